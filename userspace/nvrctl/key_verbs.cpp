// nvrctl key: the recovery key (store/recovery.hpp) — create, remove, and
// recover a set whose host key is lost onto a new host key.
#include "cli.hpp"

#include "audit/alerts.hpp"
#include "audit/audit_log.hpp"
#include "base/error.hpp"
#include "store/mirror_set.hpp"
#include "store/recovery.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace nvrfs::cli {
namespace {

using json = nlohmann::json;

struct MemberDir {
    std::string path;
    UniqueFd fd;
};

// Every member and spare of the configuration, opened.
std::vector<MemberDir> member_dirs(const Config& cfg) {
    std::vector<MemberDir> out;
    auto paths = cfg.list("member");
    for (const auto& s : cfg.list("spare")) paths.push_back(s);
    if (paths.empty()) throw UsageError("no members: give --config FILE or --member DIR");
    for (const auto& p : paths) {
        UniqueFd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd) throw_errno(errno, p, "cannot open member");
        out.push_back({p, std::move(fd)});
    }
    return out;
}

// A key operation goes into the audit log with an alert: through the
// daemon when the set is mounted, else into the members' log directly.
void key_event(const Config& cfg, const std::string& event, const std::string& alert, const std::string& detail) {
    if (ask_daemon(cfg, {{"cmd", "status"}})) {
        report(cfg, {{"event", event}, {"detail", detail}}, alert, detail);
        return;
    }
    auto paths = cfg.list("member");
    auto set = MirrorSet::assemble(paths, load_host_key(cfg.text("host_key")), AssembleOptions{true, false}, nullptr);
    AuditLog log(*set, nullptr);
    auto rec = audit_record(event, Caller::of(::getuid(), ::getgid(), ::getpid()), "", 0);
    rec["detail"] = detail;
    log.append(std::move(rec));
    Alerts(log, cfg.text("alert_hook"), uuid_str(set->set_uuid())).raise(alert, detail);
    log.sync();
}

// The master key through this host's key, checked against the superblock's MAC.
SecretKey master_by_host_key(const Config& cfg, const std::vector<MemberDir>& dirs, Uuid& set) {
    const SecretKey host = load_host_key(cfg.text("host_key"));
    for (const auto& d : dirs) {
        Superblock sb = read_superblock(d.fd.get(), d.path);
        SecretKey m = sb.unwrap_master(host, d.path);
        if (!sb.mac_ok(KeySet::derive(m))) throw Error(EBADMSG, d.path, d.path + ": superblock fails its MAC");
        set = sb.set_uuid;
        return m;
    }
    throw Error(ENOENT, "", "no member");
}

int recovery_create(const Common& c, const Config& cfg) {
    const std::string pass = read_passphrase(c);
    if (pass.size() < 12) throw UsageError("a recovery passphrase has at least 12 characters");
    const uint32_t iters = c.has("--iterations") ? static_cast<uint32_t>(std::stoul(c.opts.at("--iterations"))) : kRecoveryMinIterations;
    auto dirs = member_dirs(cfg);
    Uuid set{};
    const SecretKey master = master_by_host_key(cfg, dirs, set);
    const RecoveryWrap w = RecoveryWrap::make(master, pass, set, iters);
    for (const auto& d : dirs) write_recovery(d.fd.get(), w);
    key_event(cfg, "key-recovery-create", "KeyRecoveryCreated",
              fmt::format("recovery key created on {} member(s) (PBKDF2-HMAC-SHA-256, {} iterations)", dirs.size(), iters));
    fmt::print("recovery key written to {} member(s); keep the passphrase away from this recorder\n", dirs.size());
    return 0;
}

int recovery_remove(const Config& cfg) {
    auto dirs = member_dirs(cfg);
    size_t n = 0;
    for (const auto& d : dirs) n += remove_recovery(d.fd.get());
    key_event(cfg, "key-recovery-remove", "KeyRecoveryRemoved", fmt::format("recovery key removed from {} member(s)", n));
    fmt::print("recovery key removed from {} member(s): only the host key opens the set now\n", n);
    return 0;
}

// The master key through the recovery passphrase, from the first member that
// holds a recovery record, checked against that member's superblock MAC.
SecretKey master_by_passphrase(const std::vector<MemberDir>& dirs, const std::string& pass) {
    for (const auto& d : dirs) {
        const auto w = read_recovery(d.fd.get(), d.path);
        if (!w) continue;
        Superblock sb = read_superblock(d.fd.get(), d.path);
        SecretKey m = w->unwrap(pass, sb.set_uuid, d.path + "/" + kRecoveryPath);
        if (!sb.mac_ok(KeySet::derive(m))) throw Error(EBADMSG, d.path, d.path + ": the recovery key is not this set's");
        return m;
    }
    throw Error(ENOENT, "", "no member holds a recovery key (nvrctl key recovery create makes one while the host key works)");
}

// A new host key for a set whose old one is lost: every superblock's master
// key is wrapped again under it. Each superblock is replaced atomically; run
// again after an interruption, it finishes (the new key file is reused).
int recover(const Common& c, Config cfg) {
    if (!c.has("--host-key")) throw UsageError("key recover needs --host-key NEWFILE (where the new host key goes)");
    const std::string pass = read_passphrase(c);
    auto dirs = member_dirs(cfg);
    const SecretKey master = master_by_passphrase(dirs, pass);
    const std::string key_path = c.opts.at("--host-key");
    const SecretKey host = ::access(key_path.c_str(), F_OK) == 0 ? load_host_key(key_path) : create_host_key(key_path);
    const KeySet keys = KeySet::derive(master);
    for (const auto& d : dirs) {
        Superblock sb = read_superblock(d.fd.get(), d.path);
        if (!sb.mac_ok(keys)) throw Error(EBADMSG, d.path, d.path + ": superblock fails its MAC; not rewritten");
        sb.wrap_master(master, host);
        write_superblock(d.fd.get(), sb, keys);
    }
    if (!c.config_file.empty() || c.members.empty()) {
        Config file;
        file.load_file(c.config_path());
        if (file.text("host_key") != key_path) {
            file.set("host_key", key_path);
            file.save(c.config_path());
        }
    }
    cfg.set("host_key", key_path);
    key_event(cfg, "key-recover", "KeyRecovered",
              fmt::format("set opened with the recovery passphrase and bound to a new host key {} on {} member(s); the old host key no "
                          "longer opens it", key_path, dirs.size()));
    fmt::print("set bound to the new host key {} ({} member(s)); the recovery key stays valid\n", key_path, dirs.size());
    return 0;
}

}  // namespace

int cmd_key(const Args& args) {
    Common c = parse(args, {"--passphrase-file", "--iterations"});
    if (c.rest.empty()) throw UsageError("key needs a subcommand: recovery create|remove, or recover");
    Config cfg = load_config(c);
    if (c.rest[0] == "recover" && c.rest.size() == 1) return recover(c, cfg);
    if (c.rest[0] == "recovery" && c.rest.size() == 2 && c.rest[1] == "create") return recovery_create(c, cfg);
    if (c.rest[0] == "recovery" && c.rest.size() == 2 && c.rest[1] == "remove") return recovery_remove(cfg);
    throw UsageError("usage: nvrctl key recovery create|remove | key recover --passphrase-file F --host-key NEWFILE");
}

}  // namespace nvrfs::cli
