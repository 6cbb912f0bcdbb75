// nvrctl — administer an nvrfs set.
//
// A verb table (name, handler, summary) like zpool's; every verb parses its own
// options. Exit status: 0 ok, 1 a problem was found or the action failed,
// 2 usage error. Offline verbs work on the members directly and never modify
// them, except `init`.
#include "audit_log.hpp"
#include "config.hpp"
#include "error.hpp"
#include "io.hpp"
#include "keys.hpp"
#include "mirror_set.hpp"
#include "names.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

using namespace nvrfs;
using nlohmann::json;

namespace {

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Options shared by the verbs: which set, and output form.
struct Common {
    Config cfg;
    std::string config_file;
    bool json = false;
    std::vector<std::string> members;
    std::vector<std::string> rest;  // verb-specific leftovers
    std::map<std::string, std::string> opts;
};

// Parses --config, --member, --host-key, --json and the verb's own `--key value` options.
Common parse_common(const std::vector<std::string>& args, const std::vector<std::string>& verb_opts,
                    const std::vector<std::string>& verb_flags = {}) {
    Common c;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto need = [&]() -> std::string {
            if (i + 1 >= args.size()) throw UsageError("option " + a + " needs a value");
            return args[++i];
        };
        if (a == "--config") c.config_file = need();
        else if (a == "--member") c.members.push_back(need());
        else if (a == "--host-key") c.opts["host_key"] = need();
        else if (a == "--json") c.json = true;
        else if (std::find(verb_flags.begin(), verb_flags.end(), a) != verb_flags.end()) c.opts[a] = "yes";
        else if (std::find(verb_opts.begin(), verb_opts.end(), a) != verb_opts.end()) c.opts[a] = need();
        else if (a.rfind("-", 0) == 0) throw UsageError("unknown option '" + a + "'");
        else c.rest.push_back(a);
    }
    return c;
}

// The set's configuration: --member flags win over the config file.
Config load_config(Common& c, bool require_file) {
    Config cfg;
    const std::string file = c.config_file.empty() ? kDefaultConfig : c.config_file;
    if (c.members.empty() || !c.config_file.empty()) {
        if (require_file || ::access(file.c_str(), F_OK) == 0) cfg.load_file(file);
    }
    if (!c.members.empty()) {
        cfg.clear("member");
        for (auto& m : c.members) cfg.set("member", m);
    }
    if (c.opts.count("host_key")) cfg.set("host_key", c.opts["host_key"]);
    return cfg;
}

std::string human(uint64_t b) {
    const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int i = 0;
    while (v >= 1024 && i < 4) v /= 1024, ++i;
    return fmt::format("{:.1f} {}", v, u[i]);
}

// ---- init ----------------------------------------------------------------

int cmd_init(const std::vector<std::string>& args) {
    Common c = parse_common(args, {"--min-free", "--alert-hook"}, {"--no-config"});
    if (c.members.size() < 2) throw UsageError("init needs at least two --member directories (RAID 1)");
    const std::string cfg_path = c.config_file.empty() ? kDefaultConfig : c.config_file;
    const bool write_cfg = !c.opts.count("--no-config");
    if (write_cfg && ::access(cfg_path.c_str(), F_OK) == 0)
        throw Error(EEXIST, cfg_path, fmt::format("config {} already exists; remove it or pass --config FILE", cfg_path));

    Config cfg;
    for (auto& m : c.members) cfg.set("member", m);
    cfg.set("host_key", c.opts.count("host_key") ? c.opts["host_key"] : kDefaultHostKey);
    if (c.opts.count("--min-free")) cfg.set("min_free", c.opts["--min-free"]);
    if (c.opts.count("--alert-hook")) cfg.set("alert_hook", c.opts["--alert-hook"]);

    const std::string key_path = cfg.text("host_key");
    // Validate the members before a host key is created for them.
    for (auto& m : c.members) {
        UniqueFd fd(::open(m.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd && errno != ENOENT) throw_errno(errno, m, "cannot open member");
    }
    const bool new_key = ::access(key_path.c_str(), F_OK) != 0;
    SecretKey host = new_key ? create_host_key(key_path) : load_host_key(key_path);
    Uuid set_uuid;
    try {
        set_uuid = create_set(c.members, host);
    } catch (...) {
        if (new_key) ::unlink(key_path.c_str());
        throw;
    }
    if (write_cfg) {
        const std::string text = cfg.render();
        const auto slash = cfg_path.rfind('/');
        if (slash != std::string::npos && slash > 0) ::mkdir(cfg_path.substr(0, slash).c_str(), 0755);
        UniqueFd dir(::open(slash == std::string::npos ? "." : cfg_path.substr(0, std::max<size_t>(slash, 1)).c_str(),
                            O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        write_file_atomic_at(dir.get(), cfg_path.substr(slash + 1), text.data(), text.size(), 0644);
    }
    fmt::print("created set {} with {} members; host key {}{}\n", uuid_str(set_uuid), c.members.size(), key_path,
               write_cfg ? "; config " + cfg_path : "");
    return 0;
}

// ---- status --------------------------------------------------------------

int cmd_status(const std::vector<std::string>& args) {
    Common c = parse_common(args, {});
    Config cfg = load_config(c, c.members.empty());
    const auto paths = cfg.list("member");
    if (paths.empty()) throw UsageError("no members: give --config FILE or --member DIR");
    json out;
    out["members"] = json::array();
    int problems = 0;
    std::optional<Uuid> set_uuid;
    uint64_t newest = 0;
    struct Row {
        std::string path, state, uuid;
        uint64_t events = 0, free = 0, total = 0;
        bool dirty = false;
    };
    std::vector<Row> rows;
    for (const auto& p : paths) {
        Row r{p, "missing", "", 0, 0, 0, false};
        UniqueFd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd) {
            try {
                Superblock sb = read_superblock(fd.get(), p);
                r.uuid = uuid_str(sb.member_uuid);
                r.events = sb.events;
                r.dirty = sb.dirty;
                r.state = "active";
                if (set_uuid && *set_uuid != sb.set_uuid) r.state = "foreign";
                if (!set_uuid) set_uuid = sb.set_uuid;
                newest = std::max(newest, sb.events);
                struct statvfs s {};
                if (::fstatvfs(fd.get(), &s) == 0) {
                    r.free = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
                    r.total = static_cast<uint64_t>(s.f_blocks) * s.f_frsize;
                }
            } catch (const Error& e) {
                r.state = "invalid";
            }
        }
        rows.push_back(r);
    }
    for (auto& r : rows) {
        // A member behind the others missed writes: it was failed or removed.
        if (r.state == "active" && r.events < newest) r.state = "stale";
        if (r.state != "active") ++problems;
        out["members"].push_back({{"path", r.path}, {"state", r.state}, {"uuid", r.uuid}, {"events", r.events},
                                  {"free_bytes", r.free}, {"total_bytes", r.total}});
    }
    const bool mounted = std::any_of(rows.begin(), rows.end(), [](const Row& r) { return r.dirty; });
    const std::string state = problems ? "degraded" : "clean";
    out["set"] = set_uuid ? uuid_str(*set_uuid) : "";
    out["state"] = state;
    out["in_use"] = mounted;

    // Alerts and record count need the host key; without it, say so and go on.
    std::vector<json> alerts;
    try {
        auto set = MirrorSet::assemble(paths, load_host_key(cfg.text("host_key")), AssembleOptions{true, false}, nullptr);
        for (size_t i = 0; i < set->size(); ++i) {
            if (set->member(i).stale) continue;
            UniqueFd lf(::openat(set->member(i).dirfd.get(), kAuditLogPath, O_RDONLY | O_CLOEXEC));
            if (!lf) continue;
            std::vector<json> recs;
            VerifyResult v = read_audit_log(lf.get(), set->keys(), set->set_uuid(), &recs);
            out["audit_records"] = v.records;
            out["audit_chain"] = v.ok ? "intact" : v.message;
            if (!v.ok) ++problems;
            for (auto& r : recs)
                if (r.value("event", "") == "alert") alerts.push_back(r);
            break;
        }
    } catch (const Error& e) {
        out["audit_chain"] = std::string("unavailable: ") + e.what();
    }
    const size_t keep = std::min<size_t>(alerts.size(), 10);
    out["recent_alerts"] = json::array();
    for (size_t i = alerts.size() - keep; i < alerts.size(); ++i)
        out["recent_alerts"].push_back({{"time", alerts[i]["time"]}, {"alert", alerts[i]["alert"]}, {"detail", alerts[i]["detail"]}});

    if (c.json) {
        fmt::print("{}\n", out.dump(2));
    } else {
        fmt::print("set {}: {}{}\n", out["set"].get<std::string>(), state, mounted ? " (in use or not cleanly unmounted)" : "");
        for (auto& r : rows)
            fmt::print("  {:<8} {:<40} uuid {} events {} free {} of {}\n", r.state, r.path, r.uuid.empty() ? "-" : r.uuid,
                       r.events, human(r.free), human(r.total));
        if (out.contains("audit_records"))
            fmt::print("audit log: {} records, chain {}\n", out["audit_records"].get<uint64_t>(), out["audit_chain"].get<std::string>());
        else
            fmt::print("audit log: {}\n", out.value("audit_chain", "not found"));
        fmt::print("recent alerts:{}\n", out["recent_alerts"].empty() ? " none" : "");
        for (auto& a : out["recent_alerts"])
            fmt::print("  {} {} {}\n", a["time"].get<std::string>(), a["alert"].get<std::string>(), a["detail"].get<std::string>());
    }
    return problems ? 1 : 0;
}

// ---- log -----------------------------------------------------------------

int cmd_log(const std::vector<std::string>& args) {
    if (args.empty()) throw UsageError("log needs a subcommand: show or verify");
    const std::string sub = args[0];
    Common c = parse_common({args.begin() + 1, args.end()}, {"--since", "--until", "--user", "--path", "--event"});
    Config cfg = load_config(c, c.members.empty());
    const auto paths = cfg.list("member");
    if (paths.empty()) throw UsageError("no members: give --config FILE or --member DIR");
    auto set = MirrorSet::assemble(paths, load_host_key(cfg.text("host_key")), AssembleOptions{true, false}, nullptr);

    if (sub == "verify") {
        int bad = 0;
        json out = json::array();
        for (size_t i = 0; i < set->size(); ++i) {
            const Member& m = set->member(i);
            UniqueFd lf(::openat(m.dirfd.get(), kAuditLogPath, O_RDONLY | O_CLOEXEC));
            if (!lf) {
                ++bad;
                out.push_back({{"member", m.path}, {"ok", false}, {"message", std::strerror(errno)}});
                continue;
            }
            VerifyResult v = read_audit_log(lf.get(), set->keys(), set->set_uuid(), nullptr);
            if (!v.ok) ++bad;
            out.push_back({{"member", m.path}, {"ok", v.ok}, {"records", v.records}, {"first_bad", v.first_bad}, {"message", v.message}});
            if (!c.json) {
                if (v.ok) fmt::print("{}: {} records, chain intact\n", m.path, v.records);
                else fmt::print("{}: BROKEN after {} good records: {}\n", m.path, v.records, v.message);
            }
        }
        if (c.json) fmt::print("{}\n", out.dump(2));
        return bad ? 1 : 0;
    }
    if (sub != "show") throw UsageError("unknown log subcommand '" + sub + "'");
    for (size_t i = 0; i < set->size(); ++i) {
        if (set->member(i).stale) continue;
        UniqueFd lf(::openat(set->member(i).dirfd.get(), kAuditLogPath, O_RDONLY | O_CLOEXEC));
        if (!lf) continue;
        std::vector<json> recs;
        VerifyResult v = read_audit_log(lf.get(), set->keys(), set->set_uuid(), &recs);
        json sel = json::array();
        for (auto& r : recs) {
            const std::string t = r.value("time", "");
            if (c.opts.count("--since") && t < c.opts["--since"]) continue;
            if (c.opts.count("--until") && t > c.opts["--until"]) continue;
            if (c.opts.count("--user") && r.value("user", "") != c.opts["--user"]) continue;
            if (c.opts.count("--event") && r.value("event", "") != c.opts["--event"]) continue;
            if (c.opts.count("--path") && r.value("path", "").rfind(c.opts["--path"], 0) != 0) continue;
            sel.push_back(r);
        }
        if (c.json) {
            fmt::print("{}\n", sel.dump(2));
        } else {
            for (auto& r : sel) {
                std::string extra;
                if (r.contains("to")) extra += " -> " + r["to"].get<std::string>();
                if (r.contains("bytes")) extra += fmt::format(" bytes={}", r["bytes"].get<uint64_t>());
                if (r.contains("alert")) extra += " " + r["alert"].get<std::string>() + ": " + r.value("detail", "");
                fmt::print("{} #{} {:<8} {:<6} {}({}) pid={} {} {}{}\n", r.value("time", ""), r["seq"].get<uint64_t>(),
                           r.value("event", ""), r.value("result", ""), r.value("user", ""), r.value("uid", 0),
                           r.value("pid", 0), r.value("comm", ""), r.value("path", ""), extra);
            }
        }
        if (!v.ok) {
            fmt::print(stderr, "nvrctl: audit log of {} is broken: {}\n", set->member(i).path, v.message);
            return 1;
        }
        return 0;
    }
    throw Error(ENOENT, "", "no member holds a readable audit log");
}

struct Verb {
    const char* name;
    std::function<int(const std::vector<std::string>&)> run;
    const char* summary;
};

const std::vector<Verb>& verbs() {
    static const std::vector<Verb> v = {
        {"init", cmd_init, "init --member DIR --member DIR [--host-key F] [--config F|--no-config] [--min-free X]  create a set"},
        {"status", cmd_status, "status [--config F|--member DIR...] [--json]  set, members, free space, alerts"},
        {"log", cmd_log, "log show|verify [--since T] [--until T] [--user U] [--path P] [--event E] [--json]  audit log"},
    };
    return v;
}

void usage(FILE* out) {
    fmt::print(out, "usage: nvrctl VERB [options]   (see nvrctl(8))\n");
    for (auto& v : verbs()) fmt::print(out, "  nvrctl {}\n", v.summary);
    fmt::print(out, "exit status: 0 ok, 1 problem found or action failed, 2 usage error\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const std::string verb = argv[1];
    if (verb == "-h" || verb == "--help" || verb == "help") {
        usage(stdout);
        return 0;
    }
    std::vector<std::string> args(argv + 2, argv + argc);
    if (std::find(args.begin(), args.end(), "--help") != args.end()) {
        usage(stdout);
        return 0;
    }
    for (auto& v : verbs()) {
        if (verb != v.name) continue;
        try {
            return v.run(args);
        } catch (const UsageError& e) {
            fmt::print(stderr, "nvrctl {}: {}\n", verb, e.what());
            return 2;
        } catch (const Error& e) {
            fmt::print(stderr, "nvrctl {}: {}\n", verb, e.what());
            return 1;
        }
    }
    fmt::print(stderr, "nvrctl: unknown verb '{}'\n", verb);
    usage(stderr);
    return 2;
}
