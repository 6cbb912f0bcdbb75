// The verbs that create, inspect and change a set: init, status, member,
// spare, scrub, config.
#include "audit/audit_log.hpp"
#include "cli.hpp"
#include "audit/host_anchor.hpp"
#include "admin/control.hpp"
#include "base/error.hpp"
#include "base/io.hpp"
#include "store/keys.hpp"
#include "admin/metrics.hpp"
#include "store/mirror_set.hpp"

#include <chrono>
#include <cmath>
#include <deque>
#include <fmt/ranges.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <fmt/format.h>
#include <sys/statvfs.h>
#include <thread>
#include <unistd.h>

namespace nvrfs::cli {

using nlohmann::json;

int cmd_init(const Args& args) {
    Common c = parse(args, {"--min-free", "--alert-hook", "--spare", "--control-socket", "--tpm-tcti", "--pcrs", "--recovery-passphrase-file"}, {"--no-config", "--tpm"});
    if (c.members.size() < 2) throw UsageError("init needs at least two --member directories (RAID 1)");
    if (c.has("--tpm") && c.has("--no-config")) throw UsageError("init --tpm records the sealed key in the configuration: drop --no-config");
    const std::string cfg_path = c.config_path();
    const bool write_cfg = !c.has("--no-config");
    if (write_cfg && ::access(cfg_path.c_str(), F_OK) == 0)
        throw Error(EEXIST, cfg_path, fmt::format("config {} already exists; remove it or pass --config FILE", cfg_path));

    Config cfg;
    for (auto& m : c.members) cfg.set("member", m);
    try {
        cfg.set("host_key", c.has("--host-key") ? c.opts["--host-key"] : kDefaultHostKey);
        if (c.has("--min-free")) cfg.set("min_free", c.opts["--min-free"]);
        if (c.has("--alert-hook")) cfg.set("alert_hook", c.opts["--alert-hook"]);
        if (c.has("--control-socket")) cfg.set("control_socket", c.opts["--control-socket"]);
        if (c.has("--tpm-tcti")) cfg.set("tpm_tcti", c.opts["--tpm-tcti"]);
        if (c.has("--pcrs")) cfg.set("tpm_pcrs", c.opts["--pcrs"]);
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    const std::string key_path = cfg.text("host_key");
    for (auto& m : c.members) {
        UniqueFd fd(::open(m.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd && errno != ENOENT) throw_errno(errno, m, "cannot open member");
    }
    if (c.has("--spare")) ::mkdir(c.opts["--spare"].c_str(), 0700);
    const bool new_key = ::access(key_path.c_str(), F_OK) != 0;
    SecretKey host = new_key ? create_host_key(key_path) : load_host_key(key_path);
    Uuid set_uuid;
    try {
        set_uuid = create_set(c.members, host);
    } catch (...) {
        if (new_key) ::unlink(key_path.c_str());
        throw;
    }
    if (c.has("--spare")) {
        auto set = MirrorSet::assemble(c.members, host, {}, nullptr);
        set->add_member(c.opts["--spare"], MemberState::Spare);
        cfg.set("spare", c.opts["--spare"]);
    }
    if (write_cfg) cfg.save(cfg_path);
    if (c.has("--tpm")) seal_host_key(cfg, cfg_path, cfg.text("tpm_pcrs"));
    if (c.has("--recovery-passphrase-file")) {
        Common rc;
        rc.opts["--passphrase-file"] = c.opts.at("--recovery-passphrase-file");
        recovery_create(rc, cfg);
    }
    fmt::print("created set {} with {} members; host key {}{}\n", uuid_str(set_uuid), c.members.size(), cfg.text("host_key"),
               write_cfg ? "; config " + cfg_path : "");
    return 0;
}

// ---- status --------------------------------------------------------------

namespace {

std::string duration(double s) {
    if (s < 60) return fmt::format("{:.0f}s", s);
    if (s < 3600) return fmt::format("{:.0f}m{:02.0f}s", s / 60, std::fmod(s, 60));
    return fmt::format("{:.0f}h{:02.0f}m", s / 3600, std::fmod(s / 60, 60));
}

void print_online(const json& s) {
    fmt::print("set {} on {}: {}\n", s["set"].get<std::string>(), s["mountpoint"].get<std::string>(), s["state"].get<std::string>());
    if (s.contains("rebuild")) {
        const auto& r = s["rebuild"];
        fmt::print("rebuild of {}: {:.1f}% ({} of {}), {} files, ETA {}\n", r["member"].get<std::string>(), r["percent"].get<double>(),
                   human_bytes(r["done_bytes"]), human_bytes(r["total_bytes"]), r["files"].get<uint64_t>(), duration(r["eta_seconds"]));
    }
    for (const auto& m : s["members"]) {
        fmt::print("  {:<10} {:<40} uuid {} errors {} repaired {} free {} of {}{}\n", m["state"].get<std::string>(),
                   m["path"].get<std::string>(), m["uuid"].get<std::string>(), m["errors"].get<uint64_t>(),
                   m["repaired"].get<uint64_t>(), human_bytes(m["free_bytes"]), human_bytes(m["total_bytes"]),
                   m.contains("reason") ? " (" + m["reason"].get<std::string>() + ")" : "");
    }
    if (s.contains("space"))
        fmt::print("free space: {} of {} (alert below {}){}\n", human_bytes(s["space"]["free_bytes"]), human_bytes(s["space"]["total_bytes"]),
                   human_bytes(s["space"]["threshold_bytes"]), s["space"]["low"].get<bool>() ? "  LOW" : "");
    if (s.contains("scrub")) {
        const auto& x = s["scrub"];
        if (x["running"].get<bool>())
            fmt::print("scrub: running since {}, {:.0f}% done\n", x["started"].get<std::string>(), x["percent"].get<double>());
        else
            fmt::print("last scrub: {}: {} files, {} bad, {} repaired, {} without a good copy\n", x["finished"].get<std::string>(),
                       x["files"].get<uint64_t>(), x["bad"].get<uint64_t>(), x["repaired"].get<uint64_t>(), x["unrepairable"].get<uint64_t>());
    } else {
        fmt::print("last scrub: none since mount\n");
    }
    fmt::print("audit log: {} records\n", s["audit_records"].get<uint64_t>());
    if (s.contains("export_key")) fmt::print("export key: {}\n", s["export_key"].get<std::string>());
    if (s.contains("archive")) {
        const auto& a = s["archive"];
        fmt::print("archive: {} ({}): {} file(s) archived ({}), {} local; {} waiting{}\n", a.value("target", ""),
                   a.value("reachable", false) ? "reachable" : "UNREACHABLE", a.value("files_archived", uint64_t(0)),
                   human_bytes(a.value("bytes_archived", uint64_t(0))), a.value("files_local", uint64_t(0)), a.value("queue", uint64_t(0)),
                   a.value("last_error", "").empty() ? "" : "; last error: " + printable(a.value("last_error", "")));
    }
    if (s.contains("anchor")) {
        const auto& a = s["anchor"];
        fmt::print("host anchor: the members matched it at mount; now at audit record #{}, event counter {} (members {}), "
                   "written {} s ago{} ({})\n",
                   a["audit_seq"].get<uint64_t>(), a["events"].get<uint64_t>(), a["members_events"].get<uint64_t>(),
                   a.value("age_s", int64_t(-1)), a.value("failing", false) ? ", CANNOT BE UPDATED (see alerts)" : "",
                   a["path"].get<std::string>());
    }
    fmt::print("alerts not acknowledged:{}\n", s["alerts"].empty() ? " none" : "");
    for (const auto& a : s["alerts"])
        fmt::print("  [{}] {} {} {}\n", a["id"].get<uint64_t>(), a["time"].get<std::string>(), a["alert"].get<std::string>(),
                   a["detail"].get<std::string>());
}

// Unmounted set: read the superblocks (and, with the host key, the log).
// One member or spare as its superblock shows it (the daemon not running).
struct OfflineRow {
    std::string path, state, uuid;
    uint64_t events = 0, free = 0, total = 0;
    bool dirty = false, spare = false, rebuilding = false;
    std::optional<Uuid> set;  // the set it belongs to, when readable
};

OfflineRow offline_row(const std::string& p) {
    OfflineRow r{p, "missing", "", 0, 0, 0, false, false, false, std::nullopt};
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return r;
    try {
        Superblock sb = read_superblock(fd.get(), p);
        r.uuid = uuid_str(sb.member_uuid);
        r.events = sb.events;
        r.dirty = sb.dirty;
        r.spare = sb.role == MemberRole::Spare;
        r.rebuilding = sb.rebuilding;
        r.state = r.spare ? "spare" : sb.failed ? "failed" : r.rebuilding ? "rebuilding" : "active";
        r.set = sb.set_uuid;
        struct statvfs s {};
        if (::fstatvfs(fd.get(), &s) == 0) {
            r.free = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
            r.total = static_cast<uint64_t>(s.f_blocks) * s.f_frsize;
        }
    } catch (const Error&) {
        r.state = "invalid";
    }
    return r;
}

void print_offline(const json& out, const std::vector<OfflineRow>& rows, bool dirty) {
    fmt::print("set {}: {} (not mounted{})\n", out["set"].get<std::string>(), out["state"].get<std::string>(),
               dirty ? "; not cleanly unmounted" : "");
    for (auto& r : rows)
        fmt::print("  {:<10} {:<40} uuid {} events {} free {} of {}\n", r.state, r.path, r.uuid.empty() ? "-" : r.uuid, r.events,
                   human_bytes(r.free), human_bytes(r.total));
    if (out.contains("audit_records"))
        fmt::print("audit log: {} records, chain {}\n", out["audit_records"].get<uint64_t>(), out["audit_chain"].get<std::string>());
    else
        fmt::print("audit log: {}\n", out.value("audit_chain", "not found"));
    fmt::print("recent alerts:{}\n", out["recent_alerts"].empty() ? " none" : "");
    for (auto& a : out["recent_alerts"])
        fmt::print("  {} {} {}\n", a["time"].get<std::string>(), a["alert"].get<std::string>(), a["detail"].get<std::string>());
}

int status_offline(const Config& cfg, bool as_json) {
    auto paths = cfg.list("member");
    for (const auto& s : cfg.list("spare")) paths.push_back(s);
    if (paths.empty()) throw UsageError("no members: give --config FILE or --member DIR");
    json out;
    out["members"] = json::array();
    int problems = 0;
    std::optional<Uuid> set_uuid;
    uint64_t newest = 0;
    std::vector<OfflineRow> rows;
    for (const auto& p : paths) {
        OfflineRow r = offline_row(p);
        if (r.set) {
            if (set_uuid && *set_uuid != *r.set) r.state = "foreign";
            if (!set_uuid) set_uuid = r.set;
            if (r.state == "active" || r.state == "rebuilding") newest = std::max(newest, r.events);
        }
        rows.push_back(r);
    }
    for (auto& r : rows) {
        // A member behind the others missed writes: it was failed or removed.
        if (r.state == "active" && r.events < newest) r.state = "stale";
        if (r.state != "active" && r.state != "spare") ++problems;
        out["members"].push_back({{"path", r.path}, {"state", r.state}, {"uuid", r.uuid}, {"events", r.events},
                                  {"free_bytes", r.free}, {"total_bytes", r.total}});
    }
    const bool dirty = std::any_of(rows.begin(), rows.end(), [](const OfflineRow& r) { return r.dirty; });
    const std::string state = problems ? "degraded" : "clean";
    out["set"] = set_uuid ? uuid_str(*set_uuid) : "";
    out["state"] = state;
    out["mounted"] = false;
    out["unclean"] = dirty;

    std::deque<json> alerts;  // the last ten
    try {
        auto set = MirrorSet::assemble(paths, host_key(cfg), AssembleOptions{true, false}, nullptr);
        auto v = read_set_log(*set, [&](json&& r) {
            if (r.value("event", "") != "alert") return;
            alerts.push_back({{"time", r["time"]}, {"alert", r["alert"]}, {"detail", r["detail"]}});
            if (alerts.size() > 10) alerts.pop_front();
        });
        if (v) {
            out["audit_records"] = v->records;
            out["audit_chain"] = v->ok ? "intact" : v->message;
            if (!v->ok) ++problems;
        }
    } catch (const Error& e) {
        out["audit_chain"] = std::string("unavailable: ") + e.what();
    }
    out["recent_alerts"] = json::array();
    for (auto& a : alerts) out["recent_alerts"].push_back(std::move(a));

    if (as_json) fmt::print("{}\n", out.dump(2));
    else print_offline(out, rows, dirty);
    return problems ? 1 : 0;
}

}  // namespace

int cmd_status(const Args& args) {
    Common c = parse(args);
    if (!c.rest.empty()) throw UsageError("status takes no arguments");
    Config cfg = load_config(c);
    if (c.members.empty()) {
        if (auto s = ask_daemon(cfg, {{"cmd", "status"}})) {
            s->erase("ok");
            if (c.json) fmt::print("{}\n", s->dump(2));
            else print_online(*s);
            return (*s)["state"] == "clean" ? 0 : 1;
        }
    }
    return status_offline(cfg, c.json);
}

// The running set in the Prometheus text format (metrics.hpp); nvrfsd writes
// the same to `metrics_textfile` every check_interval.
int cmd_metrics(const Args& args) {
    Common c = parse(args);
    if (!c.rest.empty()) throw UsageError("metrics takes no arguments");
    Config cfg = load_config(c);
    auto s = require_daemon(cfg, {{"cmd", "status"}});
    fmt::print("{}", prometheus_metrics(s));
    return 0;
}

// ---- member, spare ---------------------------------------------------------

namespace {

// Keep the config file's lists in step, so the next mount assembles the same set.
void update_config(const Common& c, const std::function<void(Config&)>& change) {
    if (!c.members.empty()) return;  // no file in use
    Config file;
    file.load_file(c.config_path());
    change(file);
    file.save(c.config_path());
}

std::string abs_path(const std::string& p) {
    if (p.empty() || p[0] == '/') return p;
    char cwd[4096];
    return std::string(::getcwd(cwd, sizeof cwd) ? cwd : ".") + "/" + p;
}

}  // namespace

int cmd_member(const Args& args) {
    Common c = parse(args);
    if (c.rest.empty()) throw UsageError("member needs a subcommand: fail, remove, add or replace");
    const std::string sub = c.rest[0];
    Config cfg = load_config(c);
    if (sub == "replace") {
        if (c.rest.size() != 3) throw UsageError("usage: nvrctl member replace OLD NEW");
        const std::string old = abs_path(c.rest[1]), neu = abs_path(c.rest[2]);
        require_daemon(cfg, {{"cmd", "member-replace"}, {"old", old}, {"path", neu}});
        update_config(c, [&](Config& f) {
            f.remove("member", old);
            f.set("member", neu);
        });
        fmt::print("{} is being rebuilt; {} will be failed and removed when it is complete (see nvrctl status)\n", neu, old);
        return 0;
    }
    if (c.rest.size() != 2) throw UsageError(fmt::format("usage: nvrctl member {} DIR", sub));
    const std::string dir = abs_path(c.rest[1]);
    if (sub == "fail") {
        require_daemon(cfg, {{"cmd", "member-fail"}, {"path", dir}});
        fmt::print("{} marked failed\n", dir);
    } else if (sub == "remove") {
        require_daemon(cfg, {{"cmd", "member-remove"}, {"path", dir}});
        update_config(c, [&](Config& f) {
            f.remove("member", dir);
            f.remove("spare", dir);
        });
        fmt::print("{} removed from the set\n", dir);
    } else if (sub == "add") {
        require_daemon(cfg, {{"cmd", "member-add"}, {"path", dir}});
        update_config(c, [&](Config& f) { f.set("member", dir); });
        fmt::print("{} added; it is being rebuilt (see nvrctl status)\n", dir);
    } else {
        throw UsageError("unknown member subcommand '" + sub + "'");
    }
    return 0;
}

int cmd_spare(const Args& args) {
    Common c = parse(args);
    if (c.rest.size() != 2) throw UsageError("usage: nvrctl spare add|remove DIR");
    const std::string sub = c.rest[0], dir = abs_path(c.rest[1]);
    Config cfg = load_config(c);
    if (sub == "add") {
        if (!ask_daemon(cfg, {{"cmd", "spare-add"}, {"path", dir}})) {
            // Not mounted: write the spare's superblock directly.
            auto paths = cfg.list("member");
            auto set = MirrorSet::assemble(paths, host_key(cfg), AssembleOptions{true, false}, nullptr);
            set->add_member(dir, MemberState::Spare);
        }
        update_config(c, [&](Config& f) { f.set("spare", dir); });
        fmt::print("{} is a hot spare\n", dir);
    } else if (sub == "remove") {
        if (!ask_daemon(cfg, {{"cmd", "spare-remove"}, {"path", dir}})) {
            auto l = cfg.list("spare");
            if (std::find(l.begin(), l.end(), dir) == l.end()) throw Error(ENOENT, dir, fmt::format("{} is not a spare of this set", dir));
        }
        update_config(c, [&](Config& f) { f.remove("spare", dir); });
        fmt::print("{} is no longer a spare\n", dir);
    } else {
        throw UsageError("unknown spare subcommand '" + sub + "'");
    }
    return 0;
}

// ---- set accept-rollback ---------------------------------------------------

// Members older than this host's record of them (host_anchor.hpp) keep the
// set from mounting; an administrator who restored them on purpose accepts
// them here, and the next mount records who and what in the audit log.
int cmd_set(const Args& args) {
    Common c = parse(args);
    if (c.rest.size() != 1 || c.rest[0] != "accept-rollback") throw UsageError("usage: nvrctl set accept-rollback");
    Config cfg = load_config(c);
    if (ask_daemon(cfg, {{"cmd", "status"}}))
        throw Error(EBUSY, "", "the set is mounted: accept-rollback applies to a set that refused to mount");
    auto paths = cfg.list("member");
    if (paths.empty()) throw UsageError("no members: give --config FILE or --member DIR");
    auto set = MirrorSet::assemble(paths, host_key(cfg), AssembleOptions{true, false}, nullptr);
    HostAnchor anchor(cfg.text("state_dir"), set->set_uuid(), set->keys().anchor);
    std::optional<AnchorState> a;
    try {
        a = anchor.load();
    } catch (const Error& e) {
        fmt::print("{}\n", e.what());  // accepting also replaces a damaged record
    }
    const Caller who = Caller::of(::getuid(), ::getgid(), ::getpid());
    anchor.request_acceptance(fmt::format("uid {} ({}) pid {}", who.uid, who.user, who.pid));
    if (a) fmt::print("this host's record: event counter {}, audit log at #{} ({})\n", a->events, a->audit_seq, a->time);
    fmt::print("members: event counter {}\n", set->events());
    fmt::print("accepted: the next mount takes the members as they are, and records that in the audit log\n");
    return 0;
}

// ---- upgrade ---------------------------------------------------------------

// A set made before the namespace ledger: record each file's id, size and
// last tag once, so scrub can check them from now on (docs/format.md).
int cmd_upgrade(const Args& args) {
    Common c = parse(args);
    if (!c.rest.empty()) throw UsageError("upgrade takes no arguments");
    Config cfg = load_config(c);
    const auto r = require_daemon(cfg, {{"cmd", "ledger-baseline"}});
    if (c.json) fmt::print("{}\n", r.dump(2));
    else
        fmt::print("namespace ledger: {} file(s) recorded as they are now, {} already bound by the audit log\n",
                   r["recorded"].get<uint64_t>(), r["already"].get<uint64_t>());
    return 0;
}

// ---- scrub -----------------------------------------------------------------

int cmd_scrub(const Args& args) {
    Common c = parse(args, {}, {"--repair", "--no-wait"});
    if (!c.rest.empty()) throw UsageError("scrub takes no arguments");
    Config cfg = load_config(c);
    require_daemon(cfg, {{"cmd", "scrub"}, {"repair", c.has("--repair")}});
    if (c.has("--no-wait")) {
        fmt::print("scrub started\n");
        return 0;
    }
    json s;
    const bool tty = ::isatty(1);
    // Asked often, so that the command ends when the scrub does (a script
    // or a benchmark timing it waited up to a second more); progress is
    // shown at a pace a reader (or a log) wants.
    const auto show_every = std::chrono::milliseconds(tty ? 200 : 1000);
    auto shown = std::chrono::steady_clock::now() - show_every;
    for (;;) {
        s = require_daemon(cfg, {{"cmd", "status"}})["scrub"];
        if (!s["running"].get<bool>()) break;
        if (!c.json && std::chrono::steady_clock::now() - shown >= show_every) {
            shown = std::chrono::steady_clock::now();
            fmt::print("{}scrub: {:.0f}% ({} files){}", tty ? "\r" : "", s["percent"].get<double>(), s["files"].get<uint64_t>(), tty ? "   " : "\n");
            std::fflush(stdout);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const uint64_t skipped = s.value("skipped", uint64_t(0));
    if (c.json) fmt::print("{}\n", s.dump(2));
    else {
        fmt::print("{}scrub finished: {} files, {} chunk copies checked, {} bad, {} repaired, {} without a good copy\n", tty ? "\r" : "",
                   s["files"].get<uint64_t>(), s["chunks"].get<uint64_t>(), s["bad"].get<uint64_t>(), s["repaired"].get<uint64_t>(),
                   s["unrepairable"].get<uint64_t>());
        if (skipped)
            fmt::print("scrub could not check {} entr{} (first: {})\n", skipped, skipped == 1 ? "y" : "ies",
                       printable(s.value("first_skipped", "")));
        const uint64_t missing = s.value("missing", uint64_t(0)), mismatched = s.value("mismatched", uint64_t(0));
        if (missing || mismatched)
            fmt::print("namespace against the audit log: {} recording(s) deleted outside nvrfs, {} not what the log "
                       "recorded (swapped or rewound); see nvrctl alerts\n", missing, mismatched);
    }
    return s["bad"].get<uint64_t>() || skipped ? 1 : 0;
}

// ---- config ----------------------------------------------------------------

int cmd_config(const Args& args) {
    Common c = parse(args);
    if (c.rest.empty()) throw UsageError("config needs a subcommand: get or set");
    const std::string sub = c.rest[0];
    if (sub == "get") {
        Config cfg = load_config(c);
        if (c.rest.size() == 1) {
            json out;
            for (const auto& o : option_table()) {
                if (o.kind == OptKind::PathList) out[o.key] = cfg.list(o.key);
                else out[o.key] = cfg.text(o.key);
            }
            if (c.json) fmt::print("{}\n", out.dump(2));
            else
                for (auto& [k, v] : out.items())
                    fmt::print("{} = {}\n", k, v.is_array() ? fmt::format("{}", fmt::join(v.get<std::vector<std::string>>(), " ")) : v.get<std::string>());
            return 0;
        }
        const OptionSpec* o = find_option(c.rest[1]);
        if (!o) throw UsageError(fmt::format("unknown option '{}'", c.rest[1]));
        if (o->kind == OptKind::PathList)
            for (const auto& v : cfg.list(o->key)) fmt::print("{}\n", v);
        else
            fmt::print("{}\n", cfg.text(o->key));
        return 0;
    }
    if (sub == "set") {
        if (c.rest.size() != 3) throw UsageError("usage: nvrctl config set KEY VALUE");
        const OptionSpec* o = find_option(c.rest[1]);
        if (!o) throw UsageError(fmt::format("unknown option '{}'", c.rest[1]));
        if (o->kind == OptKind::PathList) throw UsageError(fmt::format("{} is changed with nvrctl member/spare", o->key));
        Config file;
        file.load_file(c.config_path());
        try {
            file.set(o->key, c.rest[2]);
        } catch (const Error& e) {
            throw UsageError(e.what());
        }
        file.save(c.config_path());
        const bool live = ask_daemon(file, {{"cmd", "reload"}}).has_value();
        fmt::print("{} = {}{}\n", o->key, c.rest[2], live ? " (applied to the running nvrfsd)" : "");
        return 0;
    }
    throw UsageError("unknown config subcommand '" + sub + "'");
}

}  // namespace nvrfs::cli
