#include "admin/config.hpp"

#include "base/error.hpp"
#include "base/io.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fmt/format.h>
#include <sstream>

namespace nvrfs {
namespace {

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::optional<bool> parse_bool(const std::string& s) {
    if (s == "yes" || s == "true" || s == "on" || s == "1") return true;
    if (s == "no" || s == "false" || s == "off" || s == "0") return false;
    return std::nullopt;
}

std::optional<uint64_t> parse_uint(const std::string& s) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

}  // namespace

const std::vector<OptionSpec>& option_table() {
    static const std::vector<OptionSpec> t = {
        {"member", OptKind::PathList, "", "a member directory (one per disk; repeat, at least two)"},
        {"mountpoint", OptKind::Path, "", "where nvrfsd mounts the set when no MOUNTPOINT argument is given"},
        {"spare", OptKind::PathList, "", "a hot spare directory: replaces a failed member automatically"},
        {"host_key", OptKind::Path, "/etc/nvrfs/host.key", "the host key that unlocks the members (never on a member)"},
        {"min_free", OptKind::Size, "5%", "alert when free space falls below this (percent, or bytes with K/M/G/T)"},
        {"recycle", OptKind::Bool, "no", "delete the oldest recordings to keep min_free plus headroom free"},
        {"recycle_dirs", OptKind::Text, "*", "top-level directories whose recordings may be recycled (globs, comma-separated)"},
        {"recycle_ext", OptKind::Text, "mp4,mkv,ts,m4s,avi,mov,flv,264,265,h264,h265,hevc,mjpeg,jpg,jpeg,dav",
         "extensions of the recordings that may be recycled (comma-separated)"},
        {"alert_hook", OptKind::Text, "", "program run (via /bin/sh -c) for every alert, with NVRFS_ALERT etc. set"},
        {"recovery_passphrase_file", OptKind::Text, "", "open the set with the recovery passphrase (first line of this file) instead of the host key"},
        {"tpm_tcti", OptKind::Text, "device:/dev/tpmrm0", "how to reach the TPM that seals the host key (a TSS2 TCTI: device:..., swtpm:host=H,port=P)"},
        {"tpm_pcrs", OptKind::Text, "7", "PCRs (SHA-256 bank) the sealed host key is bound to, comma-separated, or none"},
        {"check_interval", OptKind::Seconds, "5", "seconds between member health and free-space checks"},
        {"metrics_textfile", OptKind::Text, "", "file nvrfsd rewrites every check_interval with `nvrctl metrics` (Prometheus textfile collector)"},
        {"degraded", OptKind::Bool, "no", "start even when a configured member is missing"},
        {"rebuild_max_rate", OptKind::Size, "0", "limit rebuilds to this many bytes per second (K/M/G suffixes; 0 = no limit)"},
        {"device_allowlist", OptKind::Path, "/etc/nvrfs/devices.allow", "backup devices allowed (nvrctl device allow|deny)"},
        {"clamav_db", OptKind::Path, "/var/lib/clamav", "ClamAV signature directory used to scan backup devices"},
        {"control_socket", OptKind::Path, "/run/nvrfs/nvrfsd.sock", "Unix socket on which nvrfsd takes nvrctl's requests"},
        {"mask_dir", OptKind::Path, "/etc/nvrfs/masks", "privacy masks, one <camera>.json per camera (nvrctl mask)"},
        {"state_dir", OptKind::Path, "/var/lib/nvrfs", "the host's own record of each set (rollback detection); never on a member"},
        {"archive", OptKind::Text, "", "archive tier: s3://BUCKET[/PREFIX] on an S3 store (Ceph radosgw); empty = none"},
        {"archive_endpoint", OptKind::Text, "", "the S3 endpoint, http(s)://host:port"},
        {"archive_credentials", OptKind::Path, "/etc/nvrfs/archive.credentials", "access_key = ... and secret_key = ... lines (mode 0600)"},
        {"archive_after", OptKind::Duration, "7d", "closed files whose last write is older than this move to the archive (s/m/h/d)"},
        {"archive_when_free_below", OptKind::Size, "20%", "below this much free space the oldest files move first, before any recycling"},
        {"archive_retention", OptKind::Duration, "365d", "archived files older than this are deleted (from the archive and the namespace)"},
        {"archive_max_rate", OptKind::Size, "0", "limit archive uploads and downloads to this many bytes per second (0 = no limit)"},
        {"archive_cache", OptKind::Size, "2G", "local cache of archived bytes read back (under state_dir; encrypted as stored)"},
    };
    return t;
}

const OptionSpec* find_option(const std::string& key) {
    std::string k = key;
    std::replace(k.begin(), k.end(), '-', '_');
    for (const auto& o : option_table())
        if (k == o.key) return &o;
    return nullptr;
}

std::optional<uint64_t> parse_size(const std::string& s) {
    if (s.empty()) return std::nullopt;
    uint64_t mult = 1;
    std::string num = s;
    switch (s.back()) {
        case 'K': case 'k': mult = 1ull << 10; break;
        case 'M': case 'm': mult = 1ull << 20; break;
        case 'G': case 'g': mult = 1ull << 30; break;
        case 'T': case 't': mult = 1ull << 40; break;
        default: break;
    }
    if (mult != 1) num.pop_back();
    auto v = parse_uint(num);
    if (!v || *v > UINT64_MAX / mult) return std::nullopt;
    return *v * mult;
}

std::optional<uint64_t> parse_duration(const std::string& s) {
    if (s.empty()) return std::nullopt;
    uint64_t mult = 1;
    std::string num = s;
    switch (s.back()) {
        case 's': break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        default: num.push_back('s');
    }
    num.pop_back();
    auto v = parse_uint(num);
    if (!v || *v > UINT64_MAX / mult) return std::nullopt;
    return *v * mult;
}

std::optional<MinFree> parse_min_free(const std::string& s) {
    if (!s.empty() && s.back() == '%') {
        auto v = parse_uint(s.substr(0, s.size() - 1));
        if (!v || *v > 100) return std::nullopt;
        return MinFree{true, static_cast<double>(*v)};
    }
    auto b = parse_size(s);
    if (!b) return std::nullopt;
    return MinFree{false, static_cast<double>(*b)};
}

void Config::set(const std::string& key, const std::string& value) {
    const OptionSpec* o = find_option(key);
    if (!o) throw Error(EINVAL, key, fmt::format("unknown option '{}'", key));
    // One option is one line: a newline would let a value add another key
    // (alert_hook runs as root), and no value needs a control character.
    if (std::any_of(value.begin(), value.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
        throw Error(EINVAL, key, fmt::format("bad value for {}: control characters (newline, tab, ...) are not allowed", o->key));
    bool ok = true;
    switch (o->kind) {
        case OptKind::Path:
        case OptKind::PathList: ok = !value.empty() && value[0] == '/'; break;
        case OptKind::Size: ok = is_fraction(o->key) ? parse_min_free(value).has_value() : parse_size(value).has_value(); break;
        case OptKind::Duration: ok = parse_duration(value).value_or(0) > 0; break;
        case OptKind::Bool: ok = parse_bool(value).has_value(); break;
        case OptKind::Seconds: ok = parse_uint(value).value_or(0) > 0; break;
        case OptKind::Text:
            if (std::string(o->key) == "archive")
                ok = value.empty() || (value.rfind("s3://", 0) == 0 && value.size() > 5 && value[5] != '/');
            else if (std::string(o->key) == "archive_endpoint")
                ok = value.empty() || value.rfind("http://", 0) == 0 || value.rfind("https://", 0) == 0;
            break;
    }
    if (!ok) {
        static const char* what[] = {"an absolute path", "an absolute path", "a size like 10% or 500G",
                                     "yes or no", "a whole number of seconds > 0", "text", "a duration like 7d, 12h, 30m or 90s"};
        throw Error(EINVAL, key, fmt::format("bad value '{}' for {}: expected {}", value, o->key, what[static_cast<int>(o->kind)]));
    }
    auto& v = values_[o->key];
    // A list holds each path once: a member listed twice is refused at
    // mount, and a failed member taken back (member add) is listed already.
    if (o->kind == OptKind::PathList) {
        if (std::find(v.begin(), v.end(), value) == v.end()) v.push_back(value);
    } else {
        v = {value};
    }
}

void Config::remove(const std::string& key, const std::string& value) {
    const OptionSpec* o = find_option(key);
    if (!o) return;
    auto& v = values_[o->key];
    v.erase(std::remove(v.begin(), v.end(), value), v.end());
}

void Config::clear(const std::string& key) {
    if (const OptionSpec* o = find_option(key)) values_.erase(o->key);
}

void Config::load_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        int e = errno;
        throw Error(e, path, fmt::format("cannot read config {}: {}", path, std::strerror(e)));
    }
    // The config names a program run as root (alert_hook) and the members:
    // only root (or the user running nvrfs) may be able to change it.
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) throw_errno(errno, path, "cannot stat config");
    if (!S_ISREG(st.st_mode)) throw Error(EINVAL, path, fmt::format("config {} is not a regular file", path));
    if (st.st_uid != 0 && st.st_uid != ::geteuid())
        throw Error(EPERM, path, fmt::format("config {} is owned by uid {}, not by root: refusing it (chown root {})", path, st.st_uid, path));
    if (st.st_mode & 022)
        throw Error(EPERM, path, fmt::format("config {} is writable by group or others (mode {:o}): refusing it (chmod 644 {})", path,
                                             st.st_mode & 07777, path));
    std::string text(static_cast<size_t>(st.st_size), '\0');
    const ssize_t got = pread_full(fd.get(), text.data(), text.size(), 0);
    if (got < 0) throw_errno(static_cast<int>(-got), path, "cannot read config");
    text.resize(static_cast<size_t>(got));
    std::istringstream in(text);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        line = trim(line.substr(0, line.find('#')));
        if (line.empty()) continue;
        const auto eq = line.find('=');
        if (eq == std::string::npos)
            throw Error(EINVAL, path, fmt::format("{}:{}: expected 'key = value'", path, n));
        try {
            set(trim(line.substr(0, eq)), trim(line.substr(eq + 1)));
        } catch (const Error& e) {
            throw Error(EINVAL, path, fmt::format("{}:{}: {}", path, n, e.what()));
        }
    }
}

std::string Config::text(const std::string& key) const {
    const OptionSpec* o = find_option(key);
    if (!o) throw Error(EINVAL, key, fmt::format("unknown option '{}'", key));
    auto it = values_.find(o->key);
    return it == values_.end() || it->second.empty() ? o->def : it->second.back();
}

std::vector<std::string> Config::list(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

bool Config::boolean(const std::string& key) const { return parse_bool(text(key)).value_or(false); }
uint64_t Config::seconds(const std::string& key) const { return parse_uint(text(key)).value_or(1); }
MinFree Config::min_free() const { return *parse_min_free(text("min_free")); }
MinFree Config::fraction(const std::string& key) const { return parse_min_free(text(key)).value_or(MinFree{}); }
uint64_t Config::duration(const std::string& key) const { return parse_duration(text(key)).value_or(0); }
uint64_t Config::size(const std::string& key) const { return parse_size(text(key)).value_or(0); }

void Config::save(const std::string& path) const {
    const std::string text = render();
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    ::mkdir(dir.c_str(), 0755);
    UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) throw_errno(errno, dir, "cannot open config directory");
    write_file_atomic_at(d.get(), path.substr(slash + 1), text.data(), text.size(), 0644);
}

std::string Config::render() const {
    std::string out = "# nvrfs configuration (see nvrfs.conf(5))\n";
    for (const auto& o : option_table()) {
        out += fmt::format("\n# {}\n", o.help);
        auto it = values_.find(o.key);
        if (it == values_.end() || it->second.empty()) out += fmt::format("#{} = {}\n", o.key, o.def);
        else
            for (const auto& v : it->second) out += fmt::format("{} = {}\n", o.key, v);
    }
    return out;
}

SecretKey host_key(const Config& cfg) {
    const std::string path = cfg.text("host_key");
    if (const std::string next = pending_key_path(path); ::access(next.c_str(), F_OK) == 0)
        throw Error(EAGAIN, path, fmt::format("a host key rotation was interrupted ({} exists): run `nvrctl key rotate` to finish it "
                                              "before the set is opened", next));
    return load_host_key(path, cfg.text("tpm_tcti"));
}

}  // namespace nvrfs
