// The verbs that read the record of what happened: log, alerts.
#include "audit/audit_log.hpp"
#include "audit/host_anchor.hpp"
#include "cli.hpp"
#include "base/error.hpp"
#include "base/io.hpp"
#include "store/keys.hpp"
#include "store/mirror_set.hpp"

#include <cstring>
#include <fcntl.h>
#include "base/member_path.hpp"
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace nvrfs::cli {

using nlohmann::json;

std::optional<VerifyResult> read_set_log(MirrorSet& set, const std::function<void(json&&)>& each, std::string* member) {
    for (size_t i : set.healthy_members()) {
        if (set.member(i).stale) continue;
        UniqueFd lf(member_path::open_file(set.member(i).dirfd.get(), kAuditLogPath, O_RDONLY));
        if (!lf) continue;
        if (member) *member = set.member(i).path;
        return read_audit_log(lf.get(), set.keys(), set.set_uuid(), each);
    }
    return std::nullopt;
}

namespace {

// Every member's copy of the log: the chain, and its head against this
// host's record of it.
int log_verify(const Common& c, const Config& cfg, MirrorSet* set) {
    int bad = 0;
    json out = json::array();
    // The host's own record of the log's head (host_anchor.hpp): a log
    // cut or replaced on every member still verifies as a chain.
    std::optional<AnchorState> anchor;
    try {
        anchor = HostAnchor(cfg.text("state_dir"), set->set_uuid(), set->keys().anchor).load();
    } catch (const Error& e) {
        ++bad;
        out.push_back({{"anchor", e.what()}, {"ok", false}});
        if (!c.json) fmt::print("host anchor: {}\n", e.what());
    }
    for (size_t i = 0; i < set->size(); ++i) {
        const Member& m = set->member(i);
        const int fd = member_path::open_file(m.dirfd.get(), kAuditLogPath, O_RDONLY);
        if (fd < 0) {
            ++bad;
            const std::string why = member_path::is_tamper_errno(-fd) ? "replaced by a link or special file (tampered)"
                                                                      : std::strerror(-fd);
            out.push_back({{"member", m.path}, {"ok", false}, {"message", why}});
            if (!c.json) fmt::print("{}: no audit log: {}\n", m.path, why);
            continue;
        }
        UniqueFd lf(fd);
        // Streamed: the log is read once, never held whole.
        uint64_t last = 0;
        std::optional<std::string> anchored_mac;
        VerifyResult v = read_audit_log(lf.get(), set->keys(), set->set_uuid(), [&](json&& r) {
            last = r.value("seq", uint64_t(0));
            if (anchor && last == anchor->audit_seq) anchored_mac = r.value("mac", "");
        });
        if (v.ok && anchor) {
            if (const auto c = compare_log_with_anchor(*anchor, last, anchored_mac); c.rollback) {
                v.ok = false;
                v.first_bad = last < anchor->audit_seq ? last + 1 : anchor->audit_seq;
                v.message = c.reason;
            }
        }
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

// One record as a line; every field comes from the log as written (a name
// may hold anything), so each is made printable.
void print_record(const json& r) {
    auto text = [&](const char* k) {
        const auto it = r.find(k);
        return printable(it != r.end() && it->is_string() ? it->get<std::string>() : std::string());
    };
    auto number = [&](const char* k) {
        const auto it = r.find(k);
        return it != r.end() && it->is_number() ? it->dump() : std::string("?");
    };
    std::string extra;
    if (r.contains("to")) extra += " -> " + text("to");
    if (r.contains("bytes")) extra += " bytes=" + number("bytes");
    if (r.contains("alert")) extra += " " + text("alert") + ": " + text("detail");
    fmt::print("{} #{} {:<8} {:<6} {}({}) pid={} {} {}{}\n", text("time"), number("seq"), text("event"), text("result"), text("user"),
               number("uid"), number("pid"), text("comm"), text("path"), extra);
}

// Printed as they are read. --json prints what json::array().dump(2) of
// the selection would, one element at a time.
int log_show(Common& c, MirrorSet& set) {
    std::string from;
    size_t shown = 0;
    auto v = read_set_log(
        set,
        [&](json&& r) {
            const std::string t = r.value("time", "");
            if (c.has("--since") && t < c.opts["--since"]) return;
            if (c.has("--until") && t > c.opts["--until"]) return;
            if (c.has("--user") && r.value("user", "") != c.opts["--user"]) return;
            if (c.has("--event") && r.value("event", "") != c.opts["--event"]) return;
            if (c.has("--path") && r.value("path", "").rfind(c.opts["--path"], 0) != 0) return;
            if (!c.json) return print_record(r);
            std::string text = r.dump(2);
            for (size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', nl + 3)) text.insert(nl + 1, "  ");
            fmt::print("{}  {}", shown ? ",\n" : "[\n", text);
            ++shown;
        },
        &from);
    if (!v) throw Error(ENOENT, "", "no member holds a readable audit log");
    if (c.json) fmt::print("{}\n", shown ? "\n]" : "[]");
    if (!v->ok) {
        fmt::print(stderr, "nvrctl: audit log of {} is broken: {}\n", from, v->message);
        return 1;
    }
    return 0;
}

}  // namespace

int cmd_log(const Args& args) {
    Common c = parse(args, {"--since", "--until", "--user", "--path", "--event"});
    if (c.rest.size() != 1) throw UsageError("log needs a subcommand: show or verify");
    const std::string sub = c.rest[0];
    if (sub != "show" && sub != "verify") throw UsageError("unknown log subcommand '" + sub + "'");
    Config cfg = load_config(c);
    auto paths = cfg.list("member");
    if (paths.empty()) throw UsageError("no members: give --config FILE or --member DIR");
    auto set = MirrorSet::assemble(paths, host_key(cfg), AssembleOptions{true, false}, nullptr);
    return sub == "verify" ? log_verify(c, cfg, set.get()) : log_show(c, *set);
}

int cmd_alerts(const Args& args) {
    Common c = parse(args, {"--ack"}, {"--all"});
    if (!c.rest.empty()) throw UsageError("alerts takes no arguments");
    Config cfg = load_config(c);
    if (c.has("--ack")) {
        const std::string id = c.opts["--ack"];
        uint64_t n = 0;
        if (id != "all") {
            try {
                n = std::stoull(id);
            } catch (const std::exception&) {
                throw UsageError("--ack takes an alert id or 'all'");
            }
            if (n == 0) throw UsageError("--ack takes an alert id or 'all'");
        }
        require_daemon(cfg, {{"cmd", "ack"}, {"id", n}, {"by", "nvrctl"}});
        fmt::print("acknowledged {}\n", id);
        return 0;
    }
    json list = require_daemon(cfg, {{"cmd", "alerts"}})["alerts"];
    json out = json::array();
    for (auto& a : list)
        if (c.has("--all") || !a["acked"].get<bool>()) out.push_back(a);
    if (c.json) fmt::print("{}\n", out.dump(2));
    else
        for (auto& a : out)
            fmt::print("[{}] {} {}{} {}\n", a["id"].get<uint64_t>(), a["time"].get<std::string>(), printable(a["alert"].get<std::string>()),
                       a["acked"].get<bool>() ? " (acked)" : "", printable(a["detail"].get<std::string>()));
    return out.empty() ? 0 : 1;
}

}  // namespace nvrfs::cli
