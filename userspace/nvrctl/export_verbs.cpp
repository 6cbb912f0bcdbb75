// Evidence: mask set|show|remove|list, export, export verify (5.5.1.2).
// Masks are filled solid in every exported frame; an export is a signed
// package a receiver checks with openssl and sha256sum alone (evidence.hpp,
// docs/export.md). Every mask change and every export is an audit record.
#include "transfer/backup_archive.hpp"
#include "cli.hpp"
#include "base/error.hpp"
#include "transfer/evidence.hpp"
#include "base/io.hpp"
#include "store/keys.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace nvrfs::cli {

using nlohmann::json;

namespace {

void check_camera(const std::string& c) {
    if (c.empty() || c.size() > 255 || c == "." || c == ".." || c.find('/') != std::string::npos ||
        std::any_of(c.begin(), c.end(), [](unsigned char ch) { return ch < 0x20 || ch == 0x7f; }))
        throw UsageError(fmt::format("'{}' is not a camera directory name", printable(c)));
}

UniqueFd mask_dir(const Config& cfg, bool create) {
    const std::string d = cfg.text("mask_dir");
    if (create && ::mkdir(d.c_str(), 0700) < 0 && errno != EEXIST) throw_errno(errno, d, "cannot create mask directory");
    UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd && errno != ENOENT) throw_errno(errno, d, "cannot open mask directory");
    return fd;
}

std::optional<Mask> load_mask(const Config& cfg, const std::string& camera) {
    UniqueFd d = mask_dir(cfg, false);
    if (!d) return std::nullopt;
    std::string text;
    try {
        text = read_file_at(d.get(), camera + ".json", 1 << 20);
    } catch (const Error& e) {
        if (e.code() == ENOENT) return std::nullopt;
        throw;
    }
    return Mask::parse(text, cfg.text("mask_dir") + "/" + camera + ".json");
}

// Runs a program (no shell) and returns its exit status; stdout into `out` when given.
int run(const std::vector<std::string>& argv, std::string* out = nullptr) {
    int pfd[2] = {-1, -1};
    if (out && ::pipe2(pfd, O_CLOEXEC) < 0) throw_errno(errno, argv[0], "cannot run");
    const pid_t pid = ::fork();
    if (pid < 0) throw_errno(errno, argv[0], "cannot run");
    if (pid == 0) {
        if (out) ::dup2(pfd[1], 1);
        std::vector<char*> a;
        for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
        a.push_back(nullptr);
        ::execvp(a[0], a.data());
        ::_exit(127);
    }
    if (out) {
        ::close(pfd[1]);
        char buf[4096];
        ssize_t n;
        while ((n = ::read(pfd[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
            if (n > 0) out->append(buf, static_cast<size_t>(n));
        ::close(pfd[0]);
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string probe(const std::string& file, const std::string& entries) {
    std::string out;
    if (run({"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", entries, "-of", "csv=p=0", file}, &out) != 0)
        throw Error(EINVAL, file, fmt::format("{}: ffprobe cannot read it (not a video recording?)", file));
    while (!out.empty() && (out.back() == '\n' || out.back() == ',')) out.pop_back();
    return out;
}

std::string iso(time_t t) {
    char b[32];
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&t));
    return b;
}

// A private scratch directory for the concat list and the mask image; no
// video frame is ever written outside the export target.
struct Scratch {
    std::string dir;
    Scratch() {
        char t[] = "/tmp/nvrfs-export-XXXXXX";
        if (!::mkdtemp(t)) throw_errno(errno, "/tmp", "cannot create a scratch directory");
        dir = t;
    }
    ~Scratch() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

void write_text(const std::string& path, const std::string& text, mode_t mode = 0644) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd) throw_errno(errno, path, "cannot create");
    if (int r = write_full(fd.get(), text.data(), text.size()); r < 0) throw_errno(-r, path, "cannot write");
    if (::fsync(fd.get()) < 0) throw_errno(errno, path, "cannot write");
}

struct CameraClip {
    std::string camera, file;
    std::vector<Recording> used;
    std::optional<Mask> mask;
    std::string cut;  // "frame" or "keyframe"
    double offset = 0;  // seconds into the first recording where the clip starts
};

// How long a recording plays: its container's duration less its start time
// (a segment muxer's files start where the one before ended).
double play_length(const std::string& file) {
    const std::string v = probe(file, "format=start_time,duration");
    double start = 0, dur = 0;
    if (std::sscanf(v.c_str(), "%lf,%lf", &start, &dur) != 2) std::sscanf(v.c_str(), "N/A,%lf", &dur);
    return std::max(0.0, dur - std::max(0.0, start));
}

// The recordings of one camera that overlap [since, until]: each ends at its
// modification time and starts its play length earlier. Returns them with
// their lengths, and the offset of `since` into the first one.
std::vector<Recording> overlapping(const std::string& mount, const std::string& camera, time_t since, time_t until, double& offset,
                                   std::vector<double>& lengths) {
    auto all = select_recordings(mount, camera, since, until + 3600);
    std::sort(all.begin(), all.end(), [](const Recording& a, const Recording& b) { return a.mtime < b.mtime || (a.mtime == b.mtime && a.name < b.name); });
    std::vector<Recording> out;
    double first_start = 0;
    for (const auto& r : all) {
        const double len = play_length(r.src), start = static_cast<double>(r.mtime) - len;
        if (start >= static_cast<double>(until)) break;
        if (out.empty()) first_start = start;
        out.push_back(r);
        lengths.push_back(len);
    }
    offset = std::max(0.0, static_cast<double>(since) - first_start);
    return out;
}

// The concat demuxer's list, with each file's play length so that the next
// one starts where it ends (not at its container's end time).
std::string ffmpeg_concat_list(const std::vector<Recording>& recs, const std::vector<double>& lengths) {
    std::string s = "ffconcat version 1.0\n";
    for (size_t i = 0; i < recs.size(); ++i) {
        std::string q;
        for (char ch : recs[i].src) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
        s += "file '" + q + "'\n";
        if (lengths[i] > 0) s += fmt::format("duration {:.6f}\n", lengths[i]);
    }
    return s;
}

void export_clip(CameraClip& clip, const std::vector<Recording>& recs, const std::vector<double>& lengths, double offset,
                 double duration, const std::string& out, const Scratch& tmp) {
    const std::string list = tmp.dir + "/" + clip.camera + ".ffconcat";
    write_text(list, ffmpeg_concat_list(recs, lengths), 0600);
    std::vector<std::string> a = {"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-stats"};
    const std::string off = fmt::format("{:.3f}", offset), dur = fmt::format("{:.3f}", duration);
    if (clip.mask) {
        // Re-encoded: the cut is frame-exact and every frame gets the fill.
        const std::string wh = probe(recs.front().src, "stream=width,height");
        int w = 0, h = 0;
        if (std::sscanf(wh.c_str(), "%d,%d", &w, &h) != 2 || w <= 0 || h <= 0 || w > 16384 || h > 16384)
            throw Error(EINVAL, recs.front().src, "cannot read the video's size");
        const std::string pam = tmp.dir + "/" + clip.camera + ".pam";
        const Mask::Box box = clip.mask->pam_box(w, h);
        write_text(pam, box.pam, 0600);
        // The mask image looped (it is only as big as the masked area) and
        // overlaid until the recordings end: measured 1.5x faster than one
        // frame held with eof_action=repeat.
        a.insert(a.end(), {"-f", "concat", "-safe", "0", "-i", list, "-loop", "1", "-i", pam, "-filter_complex",
                           fmt::format("[0:v][1:v]overlay={}:{}:shortest=1,format=yuv420p[out]", box.x, box.y),
                           "-map", "[out]",
                           "-map", "0:a?", "-ss", off, "-t", dur, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20",
                           "-c:a", "copy", "-y", out});
        clip.cut = "frame";
    } else {
        // Stream copy: bytes as recorded, cut at the keyframe at or before `since`.
        a.insert(a.end(), {"-ss", off, "-f", "concat", "-safe", "0", "-i", list, "-t", dur, "-map", "0", "-c", "copy",
                           "-y", out});
        clip.cut = "keyframe";
    }
    if (const int rc = run(a); rc != 0) {
        ::unlink(out.c_str());
        throw Error(EIO, out, fmt::format("ffmpeg failed (exit {}) exporting camera {}", rc, clip.camera));
    }
}

// The audit records behind the exported recordings: how each came to be.
json provenance(const Config& cfg, const std::vector<CameraClip>& clips) {
    std::set<std::string> paths;
    for (const auto& c : clips)
        for (const auto& r : c.used) paths.insert("/" + r.name);
    json out = json::array();
    auto set = MirrorSet::assemble(cfg.list("member"), host_key(cfg), AssembleOptions{true, false}, nullptr);
    read_set_log(*set, [&](json&& r) {
        const std::string p = r.value("path", ""), to = r.value("to", "");
        if (paths.count(p) || paths.count(to)) out.push_back(std::move(r));
    });
    return out;
}

int export_verify(const Common& c) {
    if (c.rest.size() != 2) throw UsageError("usage: nvrctl export verify DIR [--key FINGERPRINT]");
    const std::string dir = c.rest[1];
    const auto problems = verify_package(dir, c.has("--key") ? c.opts.at("--key") : "");
    std::string fp;
    try {
        fp = pem_fingerprint(read_file_at(AT_FDCWD, dir + "/export.pub", 4096));
    } catch (const Error&) {
    }
    if (c.json) {
        fmt::print("{}\n", json{{"ok", problems.empty()}, {"key", fp}, {"problems", problems}}.dump(2));
    } else if (problems.empty()) {
        fmt::print("{}: package verifies: signed by export key {}; every file matches its SHA-256\n", dir, fp);
    } else {
        for (const auto& p : problems) fmt::print("{}: {}\n", dir, printable(p));
    }
    return problems.empty() ? 0 : 1;
}

}  // namespace

int cmd_mask(const Args& args) {
    Common c = parse(args, {"--rect", "--file", "--fill"});
    if (c.rest.empty()) throw UsageError("usage: nvrctl mask set|show|remove CAMERA | mask list");
    const std::string sub = c.rest[0];
    Config cfg = load_config(c);
    if (sub == "list") {
        UniqueFd d = mask_dir(cfg, false);
        json out = json::array();
        if (d) {
            std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(::dup(d.get())), ::closedir);
            while (dirent* e = dir ? ::readdir(dir.get()) : nullptr) {
                std::string n = e->d_name;
                if (n.size() > 5 && n.substr(n.size() - 5) == ".json") out.push_back(n.substr(0, n.size() - 5));
            }
        }
        std::sort(out.begin(), out.end());
        if (c.json) fmt::print("{}\n", out.dump(2));
        else for (auto& n : out) fmt::print("{}\n", printable(n.get<std::string>()));
        return 0;
    }
    if (c.rest.size() != 2) throw UsageError(fmt::format("usage: nvrctl mask {} CAMERA", sub));
    const std::string camera = c.rest[1];
    check_camera(camera);
    if (sub == "show") {
        const auto m = load_mask(cfg, camera);
        if (!m) throw Error(ENOENT, camera, fmt::format("camera {} has no mask", printable(camera)));
        const std::string j = m->json();
        fmt::print("{}\n", c.json ? json::parse(j).dump(2) : j);
        return 0;
    }
    // Changes are audited in the set's log, so the set must be mounted.
    require_daemon(cfg, {{"cmd", "status"}});
    if (sub == "set") {
        Mask m;
        if (c.has("--file")) {
            m = Mask::parse(read_file_at(AT_FDCWD, c.opts.at("--file"), 1 << 20), c.opts.at("--file"));
        } else if (c.has("--rect")) {
            std::stringstream ss(c.opts.at("--rect"));
            std::string r;
            while (std::getline(ss, r, ';')) m.polygons.push_back(Mask::rect(r));
        } else {
            throw UsageError("mask set needs --rect x,y,w,h[;x,y,w,h...] or --file MASK.json");
        }
        if (c.has("--fill")) m.fill = Mask::parse(json{{"fill", c.opts.at("--fill")}, {"rects", {{0, 0, 1, 1}}}}.dump(), "--fill").fill;
        const std::string text = m.json();
        UniqueFd d = mask_dir(cfg, true);
        write_file_atomic_at(d.get(), camera + ".json", text.data(), text.size(), 0600);
        report(cfg, {{"event", "mask-set"}, {"path", "/" + camera}, {"mask", text}, {"mask_sha256", hex(sha256(as_bytes(text)))}}, "",
               fmt::format("privacy mask of camera {} set ({} shapes)", camera, m.polygons.size()));
        fmt::print("camera {}: mask of {} shape(s) set; every export of it fills them solid\n", printable(camera), m.polygons.size());
        return 0;
    }
    if (sub == "remove") {
        UniqueFd d = mask_dir(cfg, false);
        if (!d || ::unlinkat(d.get(), (camera + ".json").c_str(), 0) < 0)
            throw Error(ENOENT, camera, fmt::format("camera {} has no mask", printable(camera)));
        report(cfg, {{"event", "mask-remove"}, {"path", "/" + camera}}, "", fmt::format("privacy mask of camera {} removed", camera));
        fmt::print("camera {}: mask removed\n", printable(camera));
        return 0;
    }
    throw UsageError("unknown mask subcommand '" + sub + "'");
}

namespace {

// The cameras of --camera, each with its mask unless --no-mask.
std::vector<CameraClip> clips_for(const Config& cfg, const std::string& cameras, bool no_mask) {
    std::vector<CameraClip> clips;
    std::stringstream ss(cameras);
    std::string cam;
    while (std::getline(ss, cam, ',')) {
        check_camera(cam);
        CameraClip clip;
        clip.camera = cam;
        clip.file = cam + ".mp4";
        if (!no_mask) clip.mask = load_mask(cfg, cam);
        clips.push_back(std::move(clip));
    }
    return clips;
}

// Each camera's clip of [since, until) into `dir`; their manifest entries.
json cut_clips(std::vector<CameraClip>& clips, const std::string& mount, time_t since, time_t until, const std::string& since_text,
               const std::string& until_text, const std::string& dir) {
    Scratch tmp;
    json files = json::array();
    for (auto& clip : clips) {
        double offset = 0;
        std::vector<double> lengths;
        const auto recs = overlapping(mount, clip.camera, since, until, offset, lengths);
        if (recs.empty())
            throw Error(ENOENT, clip.camera, fmt::format("camera {} has no recordings between {} and {}", printable(clip.camera),
                                                         since_text, until_text));
        clip.used = recs;
        clip.offset = offset;
        fmt::print(stderr, "export: camera {}: {} recording(s), {}\n", clip.camera, recs.size(),
                   clip.mask ? "masked (re-encoded, frame-exact cut)" : "unmasked (stream copy, cut at a keyframe)");
        export_clip(clip, recs, lengths, offset, static_cast<double>(until - since), dir + "/" + clip.file, tmp);
        uint64_t size = 0;
        const std::string h = sha256_file(dir + "/" + clip.file, &size);
        json f = {{"name", clip.file}, {"camera", clip.camera}, {"size", size}, {"sha256", h}, {"cut", clip.cut}};
        f["duration"] = std::atof(probe(dir + "/" + clip.file, "format=duration").c_str());
        files.push_back(f);
    }
    return files;
}

// manifest.json, SHA256SUMS (the clips and the manifest), an Ed25519
// signature of each, and the public key: checkable with openssl alone.
void sign_package(const std::string& dir, const json& manifest, const json& files, const ExportKey& key) {
    const std::string mtext = manifest.dump(2) + "\n";
    write_text(dir + "/manifest.json", mtext);
    std::string sumtext;
    for (auto& f : files) sumtext += f["sha256"].get<std::string>() + "  " + f["name"].get<std::string>() + "\n";
    sumtext += hex(sha256(as_bytes(mtext))) + "  manifest.json\n";
    write_text(dir + "/SHA256SUMS", sumtext);
    const Bytes s1 = key.sign(sumtext), s2 = key.sign(mtext);
    write_text(dir + "/SHA256SUMS.sig", std::string(s1.begin(), s1.end()));
    write_text(dir + "/manifest.sig", std::string(s2.begin(), s2.end()));
    write_text(dir + "/export.pub", key.public_pem());
}

// For transport: the package goes into one encrypted archive (the backup
// format: PBKDF2 + AES-256-GCM) and the plain copy is removed, so a device
// lost on the way shows nothing. `nvrctl backup restore` gives the receiver
// the package back, signatures and all. Returns the archive's path.
std::string encrypt_package(const std::string& dir, const std::string& name, const json& files, const std::string& pass, const json& meta) {
    const std::string archive = dir + ".nvrbak";
    BackupWriter w(archive, pass, kBackupMinIterations, meta);
    try {
        for (const char* f : {"manifest.json", "manifest.sig", "SHA256SUMS", "SHA256SUMS.sig", "export.pub"})
            w.add_file(dir + "/" + f, name + "/" + f);
        for (auto& f : files) w.add_file(dir + "/" + f["name"].get<std::string>(), name + "/" + f["name"].get<std::string>());
        w.finish();
    } catch (...) {
        w.abandon();
        throw;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);  // no shell: --to may hold any character
    return archive;
}

// The manifest's "cameras": each clip, its mask and the recordings it was cut from.
json camera_entries(const std::vector<CameraClip>& clips, const json& masks) {
    json cams = json::array();
    for (auto& clip : clips) {
        json used = json::array();
        for (auto& r : clip.used) used.push_back({{"path", "/" + r.name}, {"size", r.size}, {"modified", iso(r.mtime)}});
        cams.push_back({{"camera", clip.camera}, {"file", clip.file}, {"masked", clip.mask.has_value()}, {"offset", clip.offset},
                        {"mask", clip.mask ? masks.at(clip.camera) : json(nullptr)}, {"recordings", used}});
    }
    return cams;
}

}  // namespace

int cmd_export(const Args& args) {
    Common c = parse(args, {"--camera", "--since", "--until", "--to", "--reason", "--key", "--passphrase-file"}, {"--no-mask"});
    if (!c.rest.empty() && c.rest[0] == "verify") return export_verify(c);
    if (!c.rest.empty())
        throw UsageError("usage: nvrctl export --camera C[,C...] --since T --until T --to DIR|DEVICE [--passphrase-file F] | export verify DIR");
    for (const char* o : {"--camera", "--since", "--until", "--to"})
        if (!c.has(o)) throw UsageError(fmt::format("export needs {}", o));
    const bool no_mask = c.has("--no-mask");
    if (no_mask && (!c.has("--reason") || c.opts.at("--reason").size() < 4))
        throw UsageError("--no-mask exports private areas: give the reason with --reason \"...\" (it is audited)");
    Config cfg = load_config(c);
    const std::string pass = c.has("--passphrase-file") ? read_passphrase(c) : "";  // read before the work
    const time_t since = parse_time(c.opts.at("--since"), "--since"), until = parse_time(c.opts.at("--until"), "--until");
    if (until <= since) throw UsageError("--until must be after --since");
    const auto st = require_daemon(cfg, {{"cmd", "status"}});
    const std::string mount = st["mountpoint"].get<std::string>();

    std::vector<CameraClip> clips = clips_for(cfg, c.opts.at("--camera"), no_mask);

    std::unique_ptr<DeviceMount> dev;
    const std::string target = open_target(cfg, c.opts.at("--to"), c.json, dev);
    char stamp[32];
    const time_t now = ::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    const std::string name = fmt::format("nvrfs-export-{}", stamp);
    const std::string dir = target + "/" + name;
    if (::mkdir(dir.c_str(), 0755) < 0) throw_errno(errno, dir, "cannot create the package directory");

    json files;
    try {
        files = cut_clips(clips, mount, since, until, c.opts.at("--since"), c.opts.at("--until"), dir);
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);  // no shell: --to may hold any character
        throw;
    }

    // The export itself is audited first, so the package can carry its record.
    json sums = json::array();
    for (auto& f : files) sums.push_back(f["sha256"]);
    json masks = json::object();
    for (auto& clip : clips)
        if (clip.mask) masks[clip.camera] = {{"mask", json::parse(clip.mask->json())}, {"sha256", hex(sha256(as_bytes(clip.mask->json())))}};
    json ev = {{"event", "export"}, {"path", "/" + c.opts.at("--camera")}, {"to", c.opts.at("--to") + ":" + name},
               {"since", c.opts.at("--since")}, {"until", c.opts.at("--until")}, {"masked", !no_mask}, {"files", files.size()},
               {"sha256", sums}};
    if (no_mask) ev["reason"] = c.opts.at("--reason");
    const json record = report(cfg, ev, no_mask ? "ExportUnmasked" : "",
                               no_mask ? fmt::format("export of {} without privacy masks: {}", c.opts.at("--camera"), c.opts.at("--reason"))
                                       : fmt::format("export of {} ({} to {})", c.opts.at("--camera"), c.opts.at("--since"), c.opts.at("--until")));

    auto set = MirrorSet::assemble(cfg.list("member"), host_key(cfg), AssembleOptions{true, false}, nullptr);
    ExportKey key(set->keys().export_sign);
    char host[256] = "";
    ::gethostname(host, sizeof host - 1);
    const json cams = camera_entries(clips, masks);
    json manifest = {{"format", 1}, {"nvrfs_version", kNvrfsVersion}, {"set", st.value("set", "")}, {"recorder", host},
                     {"created", iso(now)}, {"since", c.opts.at("--since")}, {"until", c.opts.at("--until")},
                     {"masked", !no_mask}, {"files", files}, {"cameras", cams}, {"export_record", record},
                     {"recording_records", provenance(cfg, clips)}, {"key_fingerprint", key.fingerprint()}};
    if (no_mask) manifest["no_mask_reason"] = c.opts.at("--reason");
    sign_package(dir, manifest, files, key);
    const std::string archive =
        c.has("--passphrase-file") ? encrypt_package(dir, name, files, pass, {{"set", st.value("set", "")}, {"export", name}, {"created", now}}) : "";
    if (c.json) {
        fmt::print("{}\n", json{{"package", archive.empty() ? dir : archive}, {"key", key.fingerprint()}, {"files", files}}.dump(2));
    } else if (!archive.empty()) {
        fmt::print("export complete, encrypted: {}\n", archive);
        fmt::print("signed by export key {}; the receiver restores it with nvrctl backup restore and checks it as below\n",
                   key.fingerprint());
    } else {
        fmt::print("export complete: {}\n", dir);
        fmt::print("signed by export key {}\n", key.fingerprint());
        fmt::print("a receiver checks it with: openssl pkeyutl -verify -pubin -inkey export.pub -rawin -in SHA256SUMS "
                   "-sigfile SHA256SUMS.sig && sha256sum -c SHA256SUMS\n");
    }
    return 0;
}

}  // namespace nvrfs::cli
