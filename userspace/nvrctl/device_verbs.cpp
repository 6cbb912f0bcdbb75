// Backup devices and backups: device info|list|allow|deny|scan|hook|watch,
// backup create|verify|restore. Every decision about a device and every
// backup is recorded in the set's audit log (through nvrfsd) and syslog.
#include "transfer/backup_archive.hpp"
#include "cli.hpp"
#include "device/device.hpp"
#include "base/error.hpp"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <dirent.h>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <libudev.h>
#include <poll.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

namespace nvrfs::cli {

using nlohmann::json;

// Into the set's audit log (and an alert when `alert` is set) through the
// daemon; syslog always, so nothing is lost when the set is not mounted.
json report(const Config& cfg, json event, const std::string& alert, const std::string& detail) {
    ::openlog("nvrctl", LOG_PID, LOG_DAEMON);
    ::syslog(alert.empty() ? LOG_INFO : LOG_WARNING, "%s %s", event.value("event", "").c_str(), detail.c_str());
    json written;
    try {
        event["cmd"] = "audit";
        if (auto r = ask_daemon(cfg, event)) written = *r;
        if (!alert.empty()) ask_daemon(cfg, {{"cmd", "alert"}, {"alert", alert}, {"detail", detail}, {"path", event.value("path", "")}});
    } catch (const Error&) {
        // The daemon refused or is gone: syslog has it.
    }
    return written;
}

namespace {

json info_json(const DeviceInfo& d) {
    return {{"device", d.devnode}, {"type", d.fs_type}, {"uuid", d.uuid}, {"label", d.label}, {"serial", d.serial},
            {"bus", d.bus}, {"size", d.size}, {"luks", d.luks}, {"luks_version", d.luks_version}};
}

const char* env_or(const char* name, const char* def) {
    const char* v = std::getenv(name);
    return v && *v ? v : def;
}

// Serial and bus of a device from the udev database (what udev saw when it was
// plugged in); udev's environment wins when we run as its hook.
std::pair<std::string, std::string> udev_identity(const std::string& devnode) {
    std::string serial = env_or("ID_SERIAL_SHORT", env_or("ID_SERIAL", "")), bus = env_or("ID_BUS", "");
    struct stat st {};
    if (!serial.empty() || ::stat(devnode.c_str(), &st) < 0 || !S_ISBLK(st.st_mode)) return {serial, bus};
    std::unique_ptr<udev, decltype(&udev_unref)> u(udev_new(), udev_unref);
    if (!u) return {serial, bus};
    std::unique_ptr<udev_device, decltype(&udev_device_unref)> d(udev_device_new_from_devnum(u.get(), 'b', st.st_rdev), udev_device_unref);
    if (!d) return {serial, bus};
    auto prop = [&](const char* k) { const char* v = udev_device_get_property_value(d.get(), k); return std::string(v ? v : ""); };
    serial = prop("ID_SERIAL_SHORT").empty() ? prop("ID_SERIAL") : prop("ID_SERIAL_SHORT");
    if (bus.empty()) bus = prop("ID_BUS");
    return {serial, bus};
}

}  // namespace

// Identify, authorize and scan a device. Returns its info when it may be used;
// throws Error (after reporting) when it may not.
DeviceInfo admit(const Config& cfg, const std::string& devnode, const std::string& serial, const std::string& bus, bool quiet) {
    DeviceInfo d;
    try {
        d = identify_device(devnode, serial, bus);
    } catch (const Error& e) {
        report(cfg, {{"event", "device-refused"}, {"path", devnode}, {"errno", e.code()}}, "DeviceRefused", e.what());
        throw;
    }
    DeviceAllowlist allow(cfg.text("device_allowlist"));
    if (!allow.match(d)) {
        const std::string why = fmt::format("{}: {} device uuid={} serial={} label='{}' is not on the allowlist; not mounted",
                                            devnode, d.fs_type, d.uuid.empty() ? "-" : d.uuid, d.serial.empty() ? "-" : d.serial, d.label);
        report(cfg, {{"event", "device-refused"}, {"path", devnode}, {"uuid", d.uuid}, {"errno", EPERM}}, "DeviceRefused", why);
        throw Error(EPERM, devnode, why);
    }
    ScanResult r;
    try {
        DeviceMount m(d, false);
        if (!quiet) fmt::print(stderr, "scanning {} ({} {}) for malware...\n", devnode, d.fs_type, d.uuid);
        r = scan_tree(m.path(), cfg.text("clamav_db"));
    } catch (const Error& e) {
        report(cfg, {{"event", "device-refused"}, {"path", devnode}, {"uuid", d.uuid}, {"errno", e.code()}}, "DeviceRefused",
               fmt::format("{}: cannot be scanned: {}", devnode, e.what()));
        throw;
    }
    if (!r.infected.empty()) {
        std::string list;
        for (auto& [f, sig] : r.infected) list += fmt::format(" {} ({})", f.substr(f.find('/', 18) + 1), sig);
        const std::string why = fmt::format("{}: {} infected file(s) of {}:{}; device refused", devnode, r.infected.size(), r.files, list);
        report(cfg, {{"event", "device-refused"}, {"path", devnode}, {"uuid", d.uuid}, {"errno", EACCES}}, "DeviceInfected", why);
        throw Error(EACCES, devnode, why);
    }
    report(cfg, {{"event", "device-admitted"}, {"path", devnode}, {"uuid", d.uuid}, {"files", r.files}}, "",
           fmt::format("{}: allowed, {} files scanned clean", devnode, r.files));
    if (!quiet) fmt::print(stderr, "{}: allowed; {} files scanned with {} signatures: clean\n", devnode, r.files, r.signatures);
    return d;
}

std::string open_target(const Config& cfg, const std::string& to, bool quiet, std::unique_ptr<DeviceMount>& mount) {
    struct stat st {};
    if (::stat(to.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
        const auto [serial, bus] = udev_identity(to);
        const DeviceInfo d = admit(cfg, to, serial, bus, quiet);
        mount = std::make_unique<DeviceMount>(d, true);
        return mount->path();
    }
    if (::stat(to.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
        throw Error(ENOENT, to, fmt::format("{} is neither a block device nor a directory", to));
    return to;
}

namespace {

int hook(const Config& cfg, const std::string& action, const std::string& devnode, const std::string& serial, const std::string& bus) {
    if (devnode.empty()) throw UsageError("device hook needs DEVNAME (from udev) or --devname");
    if (action == "remove") {
        report(cfg, {{"event", "device-removed"}, {"path", devnode}}, "", devnode + " removed");
        fmt::print("{}: removed\n", devnode);
        return 0;
    }
    if (action != "add" && action != "change") return 0;
    try {
        admit(cfg, devnode, serial, bus, true);
    } catch (const Error& e) {
        fmt::print("{}: refused: {}\n", devnode, e.what());
        return 1;
    }
    report(cfg, {{"event", "device-ready"}, {"path", devnode}}, "DeviceReady", devnode + " is allowed and clean: ready for backup");
    fmt::print("{}: ready for backup\n", devnode);
    return 0;
}

}  // namespace

std::string read_passphrase(const Common& c) {
    if (c.has("--passphrase-file")) {
        std::ifstream in(c.opts.at("--passphrase-file"));
        std::string line;
        if (!in || !std::getline(in, line)) throw Error(ENOENT, c.opts.at("--passphrase-file"), "cannot read the passphrase file " + c.opts.at("--passphrase-file"));
        return line;
    }
    if (const char* p = std::getenv("NVRFS_BACKUP_PASSPHRASE")) return p;
    throw UsageError("give --passphrase-file FILE (or NVRFS_BACKUP_PASSPHRASE); never a passphrase on the command line");
}

time_t parse_time(const std::string& s, const char* what) {
    for (const char* f : {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"}) {
        tm t{};
        t.tm_isdst = -1;
        const char* end = ::strptime(s.c_str(), f, &t);
        if (end && *end == '\0') return ::mktime(&t);
    }
    throw UsageError(fmt::format("{} takes YYYY-MM-DD[THH:MM[:SS]], not '{}'", what, s));
}

std::vector<Recording> select_recordings(const std::string& root, const std::string& camera, time_t since, time_t until) {
    std::vector<Recording> out;
    std::function<void(const std::string&, const std::string&)> walk = [&](const std::string& dir, const std::string& rel) {
        std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
        if (!d) throw_errno(errno, dir, "cannot read recordings");
        std::vector<std::string> names;
        while (dirent* e = ::readdir(d.get())) {
            std::string n = e->d_name;
            if (n != "." && n != "..") names.push_back(n);
        }
        std::sort(names.begin(), names.end());
        for (const auto& n : names) {
            const std::string p = dir + "/" + n, r = rel.empty() ? n : rel + "/" + n;
            struct stat st {};
            // lstat: a symlink in the recordings (a "latest" link) is not
            // followed, so a link to a parent cannot loop and nothing is saved twice.
            if (::lstat(p.c_str(), &st) < 0) continue;
            if (S_ISDIR(st.st_mode)) walk(p, r);
            else if (S_ISREG(st.st_mode) && st.st_mtime >= since && st.st_mtime <= until) out.push_back({p, r, static_cast<uint64_t>(st.st_size), st.st_mtime});
        }
    };
    const std::string start = camera.empty() ? root : root + "/" + camera;
    struct stat st {};
    if (::stat(start.c_str(), &st) < 0) throw_errno(errno, start, camera.empty() ? "no recordings at" : "no such camera");
    walk(start, camera);
    return out;
}

namespace {

int backup_create(const Common& c, const Config& cfg) {
    if (!c.has("--to")) throw UsageError("backup create needs --to DEVICE|DIR");
    const std::string pass = read_passphrase(c);
    std::string from = c.has("--from") ? c.opts.at("--from") : "";
    std::string set = "";
    if (from.empty()) {
        const auto st = require_daemon(cfg, {{"cmd", "status"}});
        from = st["mountpoint"].get<std::string>();
        set = st["set"].get<std::string>();
    }
    const time_t since = c.has("--since") ? parse_time(c.opts.at("--since"), "--since") : 0;
    const time_t until = c.has("--until") ? parse_time(c.opts.at("--until"), "--until") : std::numeric_limits<time_t>::max();
    const std::string camera = c.has("--camera") ? c.opts.at("--camera") : "";
    const auto items = select_recordings(from, camera, since, until);
    if (items.empty()) throw Error(ENOENT, from, "no recordings match the selection; nothing to back up");
    uint64_t total = 0;
    for (auto& i : items) total += i.size;

    const std::string to = c.opts.at("--to");
    std::unique_ptr<DeviceMount> mount;
    const std::string dir = open_target(cfg, to, c.json, mount);
    char stamp[32];
    const time_t now = ::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    const std::string name = fmt::format("nvrfs-backup-{}{}.nvrbak", stamp, camera.empty() ? "" : "-" + camera);
    const std::string archive = dir + "/" + name;
    const uint32_t iters = c.has("--iterations") ? static_cast<uint32_t>(std::stoul(c.opts.at("--iterations"))) : kBackupMinIterations;
    json meta = {{"set", set}, {"camera", camera}, {"created", now}, {"source", from}};
    if (c.has("--since")) meta["since"] = c.opts.at("--since");
    if (c.has("--until")) meta["until"] = c.opts.at("--until");
    const bool tty = ::isatty(2);
    uint64_t done = 0, last_pct = 101;
    auto progress = [&](uint64_t n) {
        done += n;
        const uint64_t pct = total ? done * 100 / total : 100;
        if (pct != last_pct && (tty || pct % 10 == 0)) {
            fmt::print(stderr, "{}backup: {}% ({} of {}){}", tty ? "\r" : "", pct, human_bytes(done), human_bytes(total), tty ? "   " : "\n");
            last_pct = pct;
        }
    };
    BackupWriter w(archive, pass, iters, meta);
    try {
        for (auto& i : items) w.add_file(i.src, i.name, progress);
        w.finish();
    } catch (const Error& e) {
        const std::string inc = w.abandon();
        const std::string msg = e.code() == ENOSPC ? fmt::format("the target is full after {} of {}: the partial archive is kept as {} and marked incomplete",
                                                                 human_bytes(w.stored_bytes()), human_bytes(total), inc.substr(inc.rfind('/') + 1))
                                                   : fmt::format("backup failed: {}; the partial archive is kept as {}", e.what(), inc.substr(inc.rfind('/') + 1));
        report(cfg, {{"event", "backup"}, {"path", from}, {"to", to + ":" + name + ".incomplete"}, {"bytes", done}, {"errno", e.code()}},
               "BackupFailed", msg);
        if (tty) fmt::print(stderr, "\n");
        throw Error(e.code(), to, msg);
    }
    if (tty) fmt::print(stderr, "\n");
    report(cfg, {{"event", "backup"}, {"path", from}, {"to", to + ":" + name}, {"bytes", total}, {"files", items.size()}}, "",
           fmt::format("backup of {} files to {}", items.size(), to));
    if (c.json) fmt::print("{}\n", json{{"archive", name}, {"files", items.size()}, {"bytes", total}, {"stored_bytes", w.stored_bytes()}}.dump(2));
    else fmt::print("backup complete: {} files, {} into {}{}\n", items.size(), human_bytes(total), mount ? to + ":" : "", mount ? name : archive);
    return 0;
}

}  // namespace

namespace {

// udev's own events (after udevd processed them), each handed to the hook.
int device_watch(const Config& cfg, Common& c) {
    std::unique_ptr<udev, decltype(&udev_unref)> u(udev_new(), udev_unref);
    if (!u) throw Error(EIO, "", "cannot open libudev");
    std::unique_ptr<udev_monitor, decltype(&udev_monitor_unref)> mon(udev_monitor_new_from_netlink(u.get(), "udev"), udev_monitor_unref);
    if (!mon || udev_monitor_filter_add_match_subsystem_devtype(mon.get(), "block", nullptr) < 0 ||
        udev_monitor_enable_receiving(mon.get()) < 0)
        throw Error(EIO, "", "cannot listen to udev events (is systemd-udevd running?)");
    long left = c.has("--count") ? std::stol(c.opts["--count"]) : -1;
    fmt::print(stderr, "watching for {} block devices...\n", c.has("--all") ? "all" : "USB and eSATA");
    while (left != 0) {
        pollfd p{udev_monitor_get_fd(mon.get()), POLLIN, 0};
        if (::poll(&p, 1, -1) < 0) {
            if (errno == EINTR) continue;
            throw_errno(errno, "", "poll");
        }
        std::unique_ptr<udev_device, decltype(&udev_device_unref)> d(udev_monitor_receive_device(mon.get()), udev_device_unref);
        if (!d) continue;
        auto prop = [&](const char* k) { const char* v = udev_device_get_property_value(d.get(), k); return std::string(v ? v : ""); };
        const std::string bus = prop("ID_BUS"), action = udev_device_get_action(d.get()) ? udev_device_get_action(d.get()) : "";
        const char* node = udev_device_get_devnode(d.get());
        if (!node || (action != "add" && action != "remove")) continue;
        if (!c.has("--all") && bus != "usb" && bus != "ata") continue;
        hook(cfg, action, node, prop("ID_SERIAL_SHORT").empty() ? prop("ID_SERIAL") : prop("ID_SERIAL_SHORT"), bus);
        if (left > 0) --left;
    }
    return 0;
}

}  // namespace

int cmd_device(const Args& args) {
    Common c = parse(args, {"--uuid", "--serial", "--note", "--devname", "--action", "--count"}, {"--all"});
    if (c.rest.empty()) throw UsageError("device needs a subcommand: info, list, allow, deny, scan, hook or watch");
    const std::string sub = c.rest[0];
    Config cfg = load_config(c);
    const std::string dev = c.rest.size() > 1 ? c.rest[1] : "";
    if (sub == "info") {
        if (dev.empty()) throw UsageError("usage: nvrctl device info DEVICE");
        const auto [serial, bus] = udev_identity(dev);
        const DeviceInfo d = identify_device(dev, c.has("--serial") ? c.opts["--serial"] : serial, bus);
        DeviceAllowlist allow(cfg.text("device_allowlist"));
        json j = info_json(d);
        j["allowed"] = allow.match(d) != nullptr;
        if (c.json) fmt::print("{}\n", j.dump(2));
        else
            fmt::print("{}: {} uuid {} label '{}' size {}{}; {}\n", dev, d.fs_type, d.uuid, d.label, human_bytes(d.size),
                       d.luks ? " (" + d.luks_version + ")" : "", j["allowed"].get<bool>() ? "allowed" : "not allowed");
        return 0;
    }
    if (sub == "list") {
        DeviceAllowlist allow(cfg.text("device_allowlist"));
        json out = json::array();
        for (auto& e : allow.entries()) out.push_back({{"uuid", e.uuid}, {"serial", e.serial}, {"note", e.note}});
        if (c.json) fmt::print("{}\n", out.dump(2));
        else
            for (auto& e : allow.entries()) fmt::print("uuid={} serial={} {}\n", e.uuid, e.serial.empty() ? "-" : e.serial, e.note);
        return 0;
    }
    if (sub == "allow" || sub == "deny") {
        DeviceAllowlist allow(cfg.text("device_allowlist"));
        AllowEntry e{c.has("--uuid") ? c.opts["--uuid"] : "", c.has("--serial") ? c.opts["--serial"] : "", c.has("--note") ? c.opts["--note"] : ""};
        if (!dev.empty() && e.serial.empty()) e.serial = udev_identity(dev).first;
        if (!dev.empty()) {
            const DeviceInfo d = identify_device(dev, e.serial);
            e.uuid = d.uuid;
            if (e.note.empty()) e.note = fmt::format("{} '{}' {}", d.fs_type, d.label, human_bytes(d.size));
        }
        if (e.uuid.empty()) throw UsageError(fmt::format("usage: nvrctl device {} DEVICE | --uuid UUID [--serial S]", sub));
        if (sub == "allow") allow.allow(e);
        else if (!allow.deny(e.uuid)) throw Error(ENOENT, e.uuid, fmt::format("uuid {} is not on the allowlist", e.uuid));
        allow.save();
        report(cfg, {{"event", "device-" + sub}, {"uuid", e.uuid}, {"detail", e.note}}, "", fmt::format("uuid {} {}", e.uuid, sub == "allow" ? "allowed" : "denied"));
        fmt::print("uuid {} {}\n", e.uuid, sub == "allow" ? "allowed for backups" : "removed from the allowlist");
        return 0;
    }
    if (sub == "scan") {
        if (dev.empty()) throw UsageError("usage: nvrctl device scan DEVICE|DIR");
        struct stat st {};
        ScanResult r;
        if (::stat(dev.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
            r = scan_tree(dev, cfg.text("clamav_db"));
        } else {
            DeviceMount m(identify_device(dev), false);
            r = scan_tree(m.path(), cfg.text("clamav_db"));
        }
        for (auto& [f, sig] : r.infected) fmt::print("INFECTED {}: {}\n", f, sig);
        fmt::print("{} files scanned with {} signatures: {} infected\n", r.files, r.signatures, r.infected.size());
        return r.infected.empty() ? 0 : 1;
    }
    if (sub == "hook") {
        // Run by udev (udev-rules/90-nvrfs-backup.rules) with its properties in the environment.
        return hook(cfg, c.has("--action") ? c.opts["--action"] : env_or("ACTION", "add"),
                    c.has("--devname") ? c.opts["--devname"] : env_or("DEVNAME", ""), env_or("ID_SERIAL_SHORT", env_or("ID_SERIAL", "")),
                    env_or("ID_BUS", ""));
    }
    if (sub == "watch") return device_watch(cfg, c);
    throw UsageError("unknown device subcommand '" + sub + "'");
}

int cmd_backup(const Args& args) {
    Common c = parse(args, {"--to", "--camera", "--since", "--until", "--from", "--passphrase-file", "--iterations"});
    if (c.rest.empty()) throw UsageError("backup needs a subcommand: create, verify or restore");
    const std::string sub = c.rest[0];
    if (sub == "create") {
        Config cfg = load_config(c);
        return backup_create(c, cfg);
    }
    if (sub != "verify" && sub != "restore") throw UsageError("unknown backup subcommand '" + sub + "'");
    if (c.rest.size() != 2) throw UsageError(fmt::format("usage: nvrctl backup {} ARCHIVE{} --passphrase-file F", sub, sub == "restore" ? " --to DIR" : ""));
    if (sub == "restore" && !c.has("--to")) throw UsageError("backup restore needs --to DIR");
    const std::string pass = read_passphrase(c);
    Config cfg;
    try {
        cfg = load_config(c);
    } catch (const Error&) {
        // verify/restore work on any machine, with or without a set
    }
    const std::string archive = c.rest[1];
    try {
        const auto r = read_backup(archive, pass, sub == "restore" ? c.opts["--to"] : "");
        report(cfg, {{"event", "backup-" + sub}, {"path", archive}, {"bytes", r.bytes}, {"files", r.files.size()}}, "",
               fmt::format("{} {}: {} files", sub, archive, r.files.size()));
        if (c.json) {
            json j = {{"archive", archive}, {"ok", true}, {"files", json::array()}, {"bytes", r.bytes}, {"manifest", r.manifest}};
            for (auto& f : r.files) j["files"].push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
            fmt::print("{}\n", j.dump(2));
        } else {
            fmt::print("{}: {} files, {}: every record authentic, every SHA-256 matches{}\n", archive, r.files.size(), human_bytes(r.bytes),
                       sub == "restore" ? "; restored to " + c.opts["--to"] : "");
        }
        return 0;
    } catch (const Error& e) {
        report(cfg, {{"event", "backup-" + sub}, {"path", archive}, {"errno", e.code()}}, "BackupInvalid", e.what());
        throw;
    }
}

}  // namespace nvrfs::cli
