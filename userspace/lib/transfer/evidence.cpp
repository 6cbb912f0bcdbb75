#include "transfer/evidence.hpp"

#include "base/error.hpp"
#include "base/io.hpp"

#include <algorithm>
#include <cmath>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace nvrfs {
namespace {

constexpr size_t kMaxPolygons = 64, kMaxPoints = 256;

std::string read_small(const std::string& path, size_t max) { return read_file_at(AT_FDCWD, path, max); }

}  // namespace

// ---- masks -------------------------------------------------------------------

Mask Mask::parse(const std::string& text, const std::string& where) {
    auto bad = [&](const std::string& why) { return Error(EINVAL, where, fmt::format("{}: not a valid mask: {}", where, why)); };
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) throw bad("not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "fill" && it.key() != "polygons" && it.key() != "rects" && it.key() != "camera")
            throw bad("unknown key '" + it.key() + "'");
    Mask m;
    if (j.contains("fill")) {
        if (!j["fill"].is_string()) throw bad("fill must be \"#rrggbb\"");
        const std::string f = j["fill"].get<std::string>();
        unsigned r, g, b;
        char end;
        if (f.size() != 7 || std::sscanf(f.c_str(), "#%02x%02x%02x%c", &r, &g, &b, &end) != 3) throw bad("fill must be \"#rrggbb\"");
        m.fill = {static_cast<uint8_t>(r), static_cast<uint8_t>(g), static_cast<uint8_t>(b)};
    }
    auto coord = [&](const nlohmann::json& v) {
        if (!v.is_number()) throw bad("coordinates must be numbers");
        const double d = v.get<double>();
        if (!(d >= 0.0 && d <= 1.0)) throw bad("coordinates must be within 0..1 (relative to the frame)");
        return d;
    };
    if (j.contains("polygons")) {
        if (!j["polygons"].is_array()) throw bad("polygons must be a list");
        for (const auto& p : j["polygons"]) {
            if (!p.is_array() || p.size() < 3 || p.size() > kMaxPoints) throw bad("a polygon is a list of 3 to 256 [x, y] points");
            std::vector<Point> pts;
            for (const auto& q : p) {
                if (!q.is_array() || q.size() != 2) throw bad("a point is [x, y]");
                pts.emplace_back(coord(q[0]), coord(q[1]));
            }
            m.polygons.push_back(std::move(pts));
        }
    }
    if (j.contains("rects")) {
        if (!j["rects"].is_array()) throw bad("rects must be a list");
        for (const auto& r : j["rects"]) {
            if (!r.is_array() || r.size() != 4) throw bad("a rect is [x, y, w, h]");
            const double x = coord(r[0]), y = coord(r[1]), w = coord(r[2]), h = coord(r[3]);
            if (x + w > 1.0 + 1e-9 || y + h > 1.0 + 1e-9 || w <= 0 || h <= 0) throw bad("a rect must lie within the frame");
            m.polygons.push_back({{x, y}, {x + w, y}, {x + w, y + h}, {x, y + h}});
        }
    }
    if (m.polygons.empty()) throw bad("no polygons or rects");
    if (m.polygons.size() > kMaxPolygons) throw bad("more than 64 shapes");
    return m;
}

std::vector<Mask::Point> Mask::rect(const std::string& spec) {
    nlohmann::json r = nlohmann::json::array();
    std::stringstream ss(spec);
    std::string v;
    while (std::getline(ss, v, ',')) {
        char* end = nullptr;
        const double d = std::strtod(v.c_str(), &end);
        if (v.empty() || *end) throw Error(EINVAL, spec, fmt::format("--rect takes x,y,w,h (0..1), not '{}'", spec));
        r.push_back(d);
    }
    return parse(nlohmann::json{{"rects", nlohmann::json::array({r})}}.dump(), "--rect " + spec).polygons.front();
}

std::string Mask::json() const {
    nlohmann::json j;
    j["fill"] = fmt::format("#{:02x}{:02x}{:02x}", fill[0], fill[1], fill[2]);
    j["polygons"] = nlohmann::json::array();
    for (const auto& p : polygons) {
        nlohmann::json pts = nlohmann::json::array();
        for (auto [x, y] : p) pts.push_back({x, y});
        j["polygons"].push_back(pts);
    }
    return j.dump();
}

std::string Mask::pam(int w, int h) const {
    std::string out = fmt::format("P7\nWIDTH {}\nHEIGHT {}\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n", w, h);
    const size_t head = out.size();
    out.resize(head + static_cast<size_t>(w) * h * 4, '\0');
    // Even-odd scanline fill, each polygon on its own. A pixel the shape
    // touches at all is filled (privacy errs outwards): every row is cut at
    // its top, middle and bottom, and each span widened to whole pixels.
    std::vector<double> xs;
    for (int y = 0; y < h; ++y) {
        for (const double dy : {0.001, 0.5, 0.999}) {
            const double cy = (y + dy) / h;
            for (const auto& p : polygons) {
                xs.clear();
                for (size_t i = 0; i < p.size(); ++i) {
                    auto [x0, y0] = p[i];
                    auto [x1, y1] = p[(i + 1) % p.size()];
                    if ((y0 <= cy && y1 > cy) || (y1 <= cy && y0 > cy)) xs.push_back(x0 + (cy - y0) / (y1 - y0) * (x1 - x0));
                }
                std::sort(xs.begin(), xs.end());
                for (size_t k = 0; k + 1 < xs.size(); k += 2) {
                    const int a = std::max(0, static_cast<int>(std::floor(xs[k] * w)));
                    const int b = std::min(w - 1, static_cast<int>(std::ceil(xs[k + 1] * w)) - 1);
                    for (int x = a; x <= b; ++x) {
                        char* px = out.data() + head + (static_cast<size_t>(y) * w + x) * 4;
                        px[0] = static_cast<char>(fill[0]);
                        px[1] = static_cast<char>(fill[1]);
                        px[2] = static_cast<char>(fill[2]);
                        px[3] = static_cast<char>(255);
                    }
                }
            }
        }
    }
    return out;
}

Mask::Box Mask::pam_box(int w, int h) const {
    const std::string full = pam(w, h);
    const size_t head = full.find("ENDHDR\n") + 7;
    int x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            if (full[head + (static_cast<size_t>(y) * w + x) * 4 + 3]) {
                x0 = std::min(x0, x), x1 = std::max(x1, x);
                y0 = std::min(y0, y), y1 = std::max(y1, y);
            }
    if (x1 < 0) return {pam(1, 1), 0, 0};  // nothing filled: one transparent pixel
    const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    Box b;
    b.x = x0;
    b.y = y0;
    b.pam = fmt::format("P7\nWIDTH {}\nHEIGHT {}\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n", bw, bh);
    for (int y = y0; y <= y1; ++y) b.pam.append(full, head + (static_cast<size_t>(y) * w + x0) * 4, static_cast<size_t>(bw) * 4);
    return b;
}

std::string sha256_file(const std::string& path, uint64_t* size) {
    // A package is hostile input: a link in it is not followed.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) throw_errno(errno, path, "cannot read");
    return sha256_fd(fd.get(), path, size);
}

// ---- verification -------------------------------------------------------------

std::vector<std::string> verify_package(const std::string& dir, const std::string& pinned) {
    std::vector<std::string> problems;
    std::string pem, sums, sums_sig, manifest, manifest_sig;
    try {
        pem = read_small(dir + "/export.pub", 4096);
        sums = read_small(dir + "/SHA256SUMS", 1 << 20);
        sums_sig = read_small(dir + "/SHA256SUMS.sig", 1024);
        manifest = read_small(dir + "/manifest.json", 64 << 20);
        manifest_sig = read_small(dir + "/manifest.sig", 1024);
    } catch (const Error& e) {
        return {std::string("incomplete package: ") + e.what()};
    }
    const std::string fp = pem_fingerprint(pem);
    if (fp.empty()) return {"export.pub is not an Ed25519 public key"};
    if (!pinned.empty() && fp != pinned) problems.push_back(fmt::format("signed by key {}, not the expected {}", fp, pinned));
    if (!ed25519_verify(pem, sums, sums_sig)) problems.push_back("SHA256SUMS.sig does not verify: SHA256SUMS was altered or signed by another key");
    if (!ed25519_verify(pem, manifest, manifest_sig)) problems.push_back("manifest.sig does not verify: manifest.json was altered or signed by another key");
    // Every line of SHA256SUMS: "<64 hex>  <name>"; every listed file as listed.
    std::set<std::string> listed;
    std::stringstream ss(sums);
    std::string line;
    while (std::getline(ss, line)) {
        if (line.size() < 67 || line[64] != ' ' || line[65] != ' ') {
            problems.push_back("SHA256SUMS has a malformed line");
            continue;
        }
        const std::string want = line.substr(0, 64), name = line.substr(66);
        if (name.find('/') != std::string::npos || name == "." || name == "..") {
            problems.push_back("SHA256SUMS names a path outside the package: " + name);
            continue;
        }
        listed.insert(name);
        try {
            if (sha256_file(dir + "/" + name) != want) problems.push_back(name + ": content differs from its SHA-256 in SHA256SUMS");
        } catch (const Error& e) {
            problems.push_back(e.what());
        }
    }
    if (!listed.count("manifest.json")) problems.push_back("SHA256SUMS does not cover manifest.json");
    const auto m = nlohmann::json::parse(manifest, nullptr, false);
    if (!m.is_object() || !m.contains("files") || !m["files"].is_array()) {
        problems.push_back("manifest.json is not a valid manifest");
    } else {
        for (const auto& f : m["files"]) {
            const std::string n = f.value("name", "");
            if (!listed.count(n)) problems.push_back("manifest.json lists " + n + ", SHA256SUMS does not");
        }
    }
    // Nothing else in the package: an added file would travel unsigned.
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (d)
        while (dirent* e = ::readdir(d.get())) {
            const std::string n = e->d_name;
            if (n == "." || n == ".." || n == "export.pub" || n == "SHA256SUMS" || n == "SHA256SUMS.sig" || n == "manifest.sig") continue;
            if (!listed.count(n)) problems.push_back(n + " is in the package but not signed");
        }
    return problems;
}

}  // namespace nvrfs
