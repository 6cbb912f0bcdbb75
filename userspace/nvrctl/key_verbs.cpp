// nvrctl key: the recovery key (store/recovery.hpp) — create, remove, and
// recover a set whose host key is lost onto a new host key.
#include "cli.hpp"

#include "audit/alerts.hpp"
#include "audit/audit_log.hpp"
#include "base/error.hpp"
#include "store/mirror_set.hpp"
#include "store/recovery.hpp"
#include "store/tpm_seal.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
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
    auto set = MirrorSet::assemble(paths, host_key(cfg), AssembleOptions{true, false}, nullptr);
    AuditLog log(*set, nullptr);
    auto rec = audit_record(event, Caller::of(::getuid(), ::getgid(), ::getpid()), "", 0);
    rec["detail"] = detail;
    log.append(std::move(rec));
    Alerts(log, cfg.text("alert_hook"), uuid_str(set->set_uuid())).raise(alert, detail);
    log.sync();
}

// Superblocks are rewritten: a running nvrfsd writes its own copies of
// them (event counters) and would put the old wrapping back.
void refuse_if_mounted(const Config& cfg, const char* what) {
    if (ask_daemon(cfg, {{"cmd", "status"}}))
        throw Error(EBUSY, "", fmt::format("{} rewrites every superblock: stop nvrfsd (unmount the set) first", what));
}

// The master key through this host's key, checked against the superblock's
// MAC (of the first member: member_dirs() never returns none).
SecretKey master_by_host_key(const Config& cfg, const std::vector<MemberDir>& dirs, Uuid& set) {
    const MemberDir& d = dirs.front();
    const Superblock sb = read_superblock(d.fd.get(), d.path);
    SecretKey m = sb.unwrap_master(host_key(cfg), d.path);
    if (!sb.mac_ok(KeySet::derive(m))) throw Error(EBADMSG, d.path, d.path + ": superblock fails its MAC");
    set = sb.set_uuid;
    return m;
}

// One member's superblock, its master key wrapped under `host` now.
void rewrap(const MemberDir& d, Superblock& sb, const SecretKey& master, const SecretKey& host) {
    const KeySet keys = KeySet::derive(master);
    if (!sb.mac_ok(keys)) throw Error(EBADMSG, d.path, d.path + ": superblock fails its MAC; not rewritten");
    sb.wrap_master(master, host);
    write_superblock(d.fd.get(), sb, keys);
}

// A key file (a sealed blob) written whole beside the others: 0600, atomic.
void write_key_file(const std::string& path, const std::string& text) {
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1));
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd) throw_errno(errno, dir, "cannot open the host key's directory");
    write_file_atomic_at(dfd.get(), path.substr(slash + 1), text.data(), text.size(), 0600);
}

// Settings changed in the configuration file (the running nvrfsd, if any,
// keeps its own until it restarts).
void save_settings(const std::string& cfg_path, const std::vector<std::pair<std::string, std::string>>& settings) {
    Config file;
    file.load_file(cfg_path);
    for (const auto& [k, v] : settings) file.set(k, v);
    file.save(cfg_path);
}

}  // namespace

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

namespace {

int recovery_remove(const Config& cfg) {
    auto dirs = member_dirs(cfg);
    size_t n = 0;
    for (const auto& d : dirs) n += remove_recovery(d.fd.get());
    key_event(cfg, "key-recovery-remove", "KeyRecoveryRemoved", fmt::format("recovery key removed from {} member(s)", n));
    fmt::print("recovery key removed from {} member(s): only the host key opens the set now\n", n);
    return 0;
}

// A new host key for a set whose old one is lost: every superblock's master
// key is wrapped again under it. Each superblock is replaced atomically; run
// again after an interruption, it finishes (the new key file is reused).
int recover(const Common& c, Config cfg) {
    if (!c.has("--host-key") && !c.has("--tpm"))
        throw UsageError("key recover needs --tpm (seal the new host key in this machine's TPM) or --host-key NEWFILE");
    refuse_if_mounted(cfg, "key recover");
    const std::string pass = read_passphrase(c);
    auto dirs = member_dirs(cfg);
    std::vector<std::string> paths;
    for (const auto& d : dirs) paths.push_back(d.path);
    const SecretKey master = master_by_recovery(paths, pass);
    // With --tpm the new key is made beside the configured one, then sealed.
    const std::string configured = cfg.text("host_key");
    const std::string key_path = c.has("--host-key") ? c.opts.at("--host-key")
                                 : is_sealed_key(configured) ? configured.substr(0, configured.size() - 4)
                                                             : configured;
    const SecretKey host = ::access(key_path.c_str(), F_OK) == 0 ? load_host_key(key_path) : create_host_key(key_path);
    for (const auto& d : dirs) {
        Superblock sb = read_superblock(d.fd.get(), d.path);
        rewrap(d, sb, master, host);
    }
    if (!c.config_file.empty() || c.members.empty()) save_settings(c.config_path(), {{"host_key", key_path}});
    cfg.set("host_key", key_path);
    if (c.has("--tpm")) seal_host_key(cfg, c.config_path(), c.has("--pcrs") ? c.opts.at("--pcrs") : cfg.text("tpm_pcrs"));
    key_event(cfg, "key-recover", "KeyRecovered",
              fmt::format("set opened with the recovery passphrase and bound to a new host key {} on {} member(s); the old host key no "
                          "longer opens it", cfg.text("host_key"), dirs.size()));
    fmt::print("set bound to the new host key {} ({} member(s)); the recovery key stays valid\n", cfg.text("host_key"), dirs.size());
    return 0;
}

}  // namespace

// The host key sealed in this machine's TPM (store/tpm_seal.hpp):
// <host_key>.tpm is written (0600) and proved by unsealing it, the
// configuration names it, and the key file is overwritten and removed, so no
// plaintext key stays on the system disk.
void seal_host_key(Config& cfg, const std::string& cfg_path, const std::string& pcrs_text) {
    const std::string path = cfg.text("host_key");
    if (is_sealed_key(path)) throw Error(EEXIST, path, fmt::format("the host key is already sealed in the TPM ({})", path));
    const SecretKey key = load_host_key(path);
    const auto pcrs = parse_pcrs(pcrs_text);
    const std::string tcti = cfg.text("tpm_tcti");
    const std::string sealed = tpm_seal(tcti, key, pcrs);
    const std::string sealed_path = path + ".tpm";
    write_key_file(sealed_path, sealed);
    const SecretKey back = tpm_unseal(tcti, sealed, sealed_path);
    if (!equal_ct(back.bytes(), key.bytes())) throw Error(EIO, sealed_path, "the TPM gave back another key; the key file is kept");
    save_settings(cfg_path, {{"host_key", sealed_path}, {"tpm_pcrs", pcrs_text}});
    cfg.set("host_key", sealed_path);
    // The plaintext key goes: overwritten first (a journal may keep the old
    // blocks, so the recovery key, not this, is the answer to a lost TPM).
    if (UniqueFd kfd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW)); kfd) {
        const Bytes zeros(kHostKeyLen);
        (void)pwrite_full(kfd.get(), zeros.data(), zeros.size(), 0);
        ::fsync(kfd.get());
    }
    if (::unlink(path.c_str()) < 0) throw_errno(errno, path, "cannot remove the plaintext host key");
    key_event(cfg, "key-seal", "HostKeySealed",
              fmt::format("host key sealed in the TPM ({}, PCRs {}) as {}; the key file {} was removed", tcti, pcrs.empty() ? "none" : pcrs_text,
                          sealed_path, path));
}

namespace {

// A new host key for the set, the recordings untouched: every superblock's
// master key is wrapped under it, then it replaces the old key (file or
// sealed). The next key is made durable first, beside the old one; a
// rotation killed half-way leaves each member under the old or the next key
// and is finished by running it again (nvrfsd refuses to open the set until
// then), so no moment leaves a set that neither key opens.
int rotate(const Config& cfg) {
    refuse_if_mounted(cfg, "key rotate");
    const std::string path = cfg.text("host_key"), next_path = pending_key_path(path), tcti = cfg.text("tpm_tcti");
    const bool sealed = is_sealed_key(path);
    auto dirs = member_dirs(cfg);
    const SecretKey old = load_host_key(path, tcti);
    const bool resumed = ::access(next_path.c_str(), F_OK) == 0;
    SecretKey next;
    if (resumed) {
        next = load_host_key(next_path, tcti);
    } else if (sealed) {
        next = SecretKey::random(kHostKeyLen);
        write_key_file(next_path, tpm_seal(tcti, next, parse_pcrs(cfg.text("tpm_pcrs"))));
    } else {
        next = create_host_key(next_path);
    }
    const char* delay = std::getenv("NVRFS_KEY_ROTATE_DELAY_MS");  // tests: room to kill it half-way
    size_t moved = 0;
    for (const auto& d : dirs) {
        Superblock sb = read_superblock(d.fd.get(), d.path);
        SecretKey master;
        try {
            master = sb.unwrap_master(old, d.path);
        } catch (const Error&) {
            (void)sb.unwrap_master(next, d.path);  // done before an interruption (throws when under neither key)
            continue;
        }
        rewrap(d, sb, master, next);
        ++moved;
        if (delay) ::usleep(static_cast<useconds_t>(std::stoul(delay) * 1000));
    }
    if (::rename(next_path.c_str(), path.c_str()) < 0) throw_errno(errno, path, "cannot put the new host key in place");
    key_event(cfg, "key-rotate", "HostKeyRotated",
              fmt::format("host key {} replaced{}: {} member(s) re-wrapped{}; the old key no longer opens the set", path,
                          sealed ? " (sealed in the TPM)" : "", moved, resumed ? " (an interrupted rotation finished)" : ""));
    fmt::print("host key rotated{}; {} member(s) re-wrapped, recordings untouched\n", resumed ? " (interrupted rotation finished)" : "",
               dirs.size());
    return 0;
}

}  // namespace

int cmd_key(const Args& args) {
    Common c = parse(args, {"--passphrase-file", "--iterations", "--pcrs"}, {"--tpm"});
    if (c.rest.empty()) throw UsageError("key needs a subcommand: recovery create|remove, or recover");
    Config cfg = load_config(c);
    if (c.rest[0] == "recover" && c.rest.size() == 1) return recover(c, cfg);
    if (c.rest[0] == "rotate" && c.rest.size() == 1) return rotate(cfg);
    if (c.rest[0] == "seal" && c.rest.size() == 1) {
        if (!c.has("--tpm")) throw UsageError("usage: nvrctl key seal --tpm [--pcrs LIST|none]");
        seal_host_key(cfg, c.config_path(), c.has("--pcrs") ? c.opts.at("--pcrs") : cfg.text("tpm_pcrs"));
        fmt::print("host key sealed in the TPM: {}; no key file remains\n", cfg.text("host_key"));
        return 0;
    }
    if (c.rest[0] == "recovery" && c.rest.size() == 2 && c.rest[1] == "create") return recovery_create(c, cfg);
    if (c.rest[0] == "recovery" && c.rest.size() == 2 && c.rest[1] == "remove") return recovery_remove(cfg);
    throw UsageError("usage: nvrctl key recovery create|remove | key recover --passphrase-file F --host-key NEWFILE | key seal --tpm | key rotate");
}

}  // namespace nvrfs::cli
