#include "daemon.hpp"

#include "admin/archive.hpp"

#include "base/error.hpp"
#include "base/plain_path.hpp"
#include "transfer/evidence.hpp"
#include "audit/ledger.hpp"
#include "admin/metrics.hpp"
#include "base/io.hpp"
#include "store/recovery.hpp"
#include "store/tpm_seal.hpp"

#include <fcntl.h>

#include <chrono>
#include <malloc.h>
#include <nlohmann/json.hpp>
#include <unordered_set>
#include <fmt/format.h>

namespace nvrfs {

Caller peer_of(const nlohmann::json& req) {
    const auto& peer = req.at("_peer");
    return Caller::of(peer.value("uid", 0u), peer.value("gid", 0u), peer.value("pid", 0));
}

// Through the host key (file or sealed in the TPM), or, on a machine that
// lost it, through the recovery passphrase (store/recovery.hpp).
std::unique_ptr<MirrorSet> Daemon::assemble_set(const Config& cfg, const std::vector<std::string>& paths,
                                                std::vector<std::string>& notes) {
    const AssembleOptions opt{cfg.boolean("degraded")};
    const std::string pass_file = cfg.text("recovery_passphrase_file");
    if (pass_file.empty()) return MirrorSet::assemble(paths, host_key(cfg), opt, &notes);
    std::string pass;
    try {
        pass = read_file_at(AT_FDCWD, pass_file, 4096);
    } catch (const Error& e) {
        throw Error(e.code(), pass_file, fmt::format("cannot read the recovery passphrase file {}: {}", pass_file, e.what()));
    }
    if (const auto nl = pass.find('\n'); nl != std::string::npos) pass.resize(nl);
    const SecretKey master = master_by_recovery(paths, pass);
    auto set = MirrorSet::assemble(paths, [&](const Superblock&, const std::string&) { return master; }, opt, &notes);
    notes.push_back("MountedWithRecoveryKey: the set was opened with the recovery passphrase, not the host key; bind it to this "
                    "machine with `nvrctl key recover` (after unmounting)");
    return set;
}

std::unique_ptr<Daemon> Daemon::prepare(const Config& cfg, const std::string& config_file, const std::string& mountpoint) {
    auto d = std::make_unique<Daemon>();
    d->cfg = cfg;
    d->config_file = config_file;
    d->mountpoint = mountpoint;
    auto paths = cfg.list("member");
    if (paths.empty()) throw Error(EINVAL, "", "no members configured (give --member DIR at least twice, or --config FILE)");
    for (const auto& s : cfg.list("spare")) paths.push_back(s);
    std::vector<std::string> notes;
    d->set = assemble_set(cfg, paths, notes);
    d->log = std::make_unique<AuditLog>(*d->set, &notes);
    d->alerts = std::make_unique<Alerts>(*d->log, cfg.text("alert_hook"), uuid_str(d->set->set_uuid()));
    d->vol = std::make_unique<Volume>(*d->set, *d->log, *d->alerts);
    d->start_archive();
    d->export_key_ = ExportKey(d->set->keys().export_sign).fingerprint();  // shown by every status

    Daemon* self = d.get();
    d->set->set_fail_handler([self](size_t i, int err, const std::string& ctx) {
        self->alerts->raise(alert::MemberFailed,
                            fmt::format("member {} failed ({}: {}); recording continues on {} member(s)", self->set->member(i).path,
                                        ctx, errno_name(err), self->set->healthy_count()));
        self->promote_spare();
    });
    d->set->set_note_handler([self](const std::string& kind, const std::string& detail) { self->alerts->raise(kind, detail); });
    // The alert's own record will not fit either; syslog and the hook carry it.
    d->log->set_on_lost([self](const std::string& event) {
        self->alerts->raise("AuditLogFull", fmt::format("a '{}' record found no member with room; records resume when space "
                                                        "returns (the chain stays unbroken)", event));
    });

    MirrorSet& set = *d->set;
    d->anchor = std::make_unique<HostAnchor>(cfg.text("state_dir"), set.set_uuid(), set.keys().anchor);
    if (is_sealed_key(cfg.text("host_key")) && cfg.text("recovery_passphrase_file").empty())
        d->tpm_counter_index_ = tpm_counter_index(set.set_uuid());
    std::string accepted;
    d->check_anchor(notes, accepted);  // throws when the members went backwards
    d->build_ledger(notes);
    // Only the complete members saw the last unmount: a stale one (failed,
    // or away, while the set ran on) still carries the mark of the mount it
    // left, and would raise a false alarm and a needless repairing scrub.
    bool unclean = false;
    for (size_t i : set.healthy_members()) unclean |= set.member(i).sb.dirty;
    set.bump_events(true);
    auto rec = audit_record("mount", Caller::daemon(), mountpoint, 0);
    rec["set"] = uuid_str(set.set_uuid());
    rec["members"] = paths;
    d->log->append(std::move(rec));
    if (!accepted.empty()) {
        auto acc = audit_record("accept-rollback", Caller::daemon(), mountpoint, 0);
        acc["found"] = accepted;
        acc["requested"] = d->anchor->acceptance().value_or("");
        d->log->append(std::move(acc));
        d->alerts->raise(alert::RollbackAccepted,
                         fmt::format("mounted although {} (accepted by the administrator: {})", accepted,
                                     d->anchor->acceptance().value_or("?")));
        d->anchor->clear_acceptance();
    }
    d->anchor_milestone();
    for (const auto& n : notes) {
        const auto colon = n.find(':');
        d->alerts->raise(n.substr(0, colon), n.substr(colon + 2));
    }
    d->unclean_ = unclean;
    d->vol->set_place_check([self](const std::string& path, const Volume::Facts& now, bool settled) {
        return self->misplaced(path, self->ledger->find(path), now, settled);
    });
    if (unclean)
        d->alerts->raise(alert::UncleanShutdown,
                         "the set was not cleanly unmounted (crash, power cut or killed daemon): write sessions open at that "
                         "moment have no closing record; a repairing scrub runs now");
    if (set.healthy_count() < 2) d->alerts->raise(alert::MemberMissing, "the set runs with a single complete member: no redundancy");
    // Refuse a second daemon for the same control socket before mounting.
    d->control = std::make_unique<ControlServer>(cfg.text("control_socket"), [self](const nlohmann::json& r) { return self->handle(r); });
    return d;
}

// The members must not be older than what this host saw of them last time
// (host_anchor.hpp): an older copy of every member, or an audit log cut or
// replaced on every member, refuses the mount until it is accepted.
void Daemon::check_anchor(std::vector<std::string>& notes, std::string& accepted) {
    const auto a = anchor->load();
    if (a) tpm_counter_ = a->tpm_counter;
    if (!a) {
        notes.push_back(fmt::format("{}: this host had no record of the set (first mount here, or an upgrade); "
                                    "rollback detection starts now ({})", alert::HostAnchorCreated, anchor->path()));
        return;
    }
    auto c = compare_with_anchor(*a, set->events(), log->last_seq(),
                                 [this](uint64_t end) { return log->record_ending_at(end); });
    // The host's record itself, against the TPM's counter: a system disk (or
    // its state directory) put back from an older copy carries an older one.
    if (!c.rollback && tpm_counter_index_ && a->tpm_counter) {
        // No counter for the set in this TPM: the key was sealed in a new
        // TPM (key recover, a replaced TPM); one is started below. Clearing
        // the TPM to get here would also destroy the sealed key.
        const auto now = tpm_counter_read(cfg.text("tpm_tcti"), *tpm_counter_index_);
        if (!now) {
            notes.push_back(fmt::format("{}: this TPM holds no counter for the set yet (the host key was sealed in a new TPM); "
                                        "one starts now", alert::HostAnchorCreated));
        } else if (a->tpm_counter != *now && a->tpm_counter != *now + 1) {  // +1: the increment after the record was lost
            c.rollback = true;
            c.reason = fmt::format("this host's record of the set goes with TPM counter {}, and the TPM's counter is at {}: "
                                   "the host's state was put back from an older copy", a->tpm_counter, *now);
        }
    }
    if (!c.rollback) return;
    if (anchor->acceptance()) {
        accepted = c.reason;
        return;
    }
    alerts->raise(alert::RollbackDetected, c.reason + "; mount refused");
    throw AnchorRefusal(ESTALE, "", fmt::format("rollback detected: {}. Something is older than it should be: the members than this "
                                        "host's record of them ({}), or that record than the TPM's counter. If it was restored "
                                        "on purpose, run `nvrctl set accept-rollback` and mount again.",
                                        c.reason, anchor->path()));
}

// The host's record at mount and clean unmount. With the host key sealed in
// the TPM these also move the set's TPM counter on: the record that names
// the next value is written first, so a crash in between leaves it one ahead
// (accepted), never behind.
void Daemon::anchor_milestone() {
    if (!tpm_counter_index_) return update_anchor();
    const std::string tcti = cfg.text("tpm_tcti");
    try {
        tpm_counter_ = tpm_counter_read(tcti, *tpm_counter_index_).value_or(0) + 1;
        update_anchor();
        if (const uint64_t now = tpm_counter_increment(tcti, *tpm_counter_index_); now != tpm_counter_) {
            tpm_counter_ = now;  // a new counter starts where the TPM says
            update_anchor();
        }
    } catch (const Error& e) {
        alerts->raise("HostAnchorFailed", std::string("cannot move the TPM counter of the host's record on: ") + e.what());
        update_anchor();  // the record itself, with the counter it had
    }
}

void Daemon::update_anchor() {
    std::lock_guard lk(anchor_mu_);
    AnchorState s;
    s.tpm_counter = tpm_counter_;
    const auto h = log->synced_head();  // durable before it is anchored
    s.events = set->events();
    s.audit_seq = h.seq;
    s.audit_mac = h.mac;
    s.audit_end = h.end;
    s.time = anchored_.time;
    if (s == anchored_) return;
    s.time = rfc3339_now();
    try {
        anchor->store(s);
        anchored_ = s;
        anchored_at_ = ::time(nullptr);
        anchor_failed_ = false;
    } catch (const Error& e) {
        // Once until it works again: this runs every check_interval.
        if (!anchor_failed_)
            alerts->raise("HostAnchorFailed", std::string("cannot update the host's record of the set: ") + e.what());
        anchor_failed_ = true;
    }
}

// The ledger, replayed once at mount (from the host's checkpoint when it
// matches the log), then kept current with every record appended.
void Daemon::build_ledger(std::vector<std::string>& notes) {
    ledger = std::make_unique<LiveLedger>();
    const LogPosition from = ledger_checkpoint(notes);
    checkpoint_seq_ = from.seq;
    const auto replayed = log->follow([l = ledger.get()](const nlohmann::json& r, uint64_t end) { l->apply(r, end); }, from);
    ::malloc_trim(0);  // the parsed checkpoint and records are gone: give their pages back
    if (!replayed.ok) notes.push_back(fmt::format("{}: the audit log does not verify ({}); files are held to its first {} record(s)",
                                                  alert::TamperDetected, replayed.message, replayed.records));
}

// The host's checkpoint of the ledger, when it is the ledger as of a record
// the log still holds at the same place: the ledger starts from it.
LogPosition Daemon::ledger_checkpoint(std::vector<std::string>& notes) {
    std::string why;
    if (auto cp = anchor->load_checkpoint(&why)) {
        auto l = Ledger::from_json(cp->value("ledger", nlohmann::json()));
        const LogPosition at{cp->value("end", uint64_t(0)), cp->value("seq", uint64_t(0)), cp->value("audit_mac", std::string())};
        const auto rec = log->record_ending_at(at.end);
        if (l && at.seq && rec && rec->first == at.seq && rec->second == at.mac) {
            ledger->reset(std::move(*l), at);
            return at;
        }
        why = fmt::format("the host's ledger checkpoint (as of audit record #{}) does not match the audit log", at.seq);
    }
    if (!why.empty()) notes.push_back(fmt::format("LedgerCheckpointIgnored: {}; the whole audit log is replayed", why));
    return {};
}

void Daemon::save_ledger() {
    const auto [copy, at] = ledger->checkpoint();
    if (!at.seq) return;
    checkpoint_seq_ = at.seq;  // written or not: tried again after as many records
    try {
        anchor->store_checkpoint({{"ledger", copy.to_json()}, {"seq", at.seq}, {"audit_mac", at.mac}, {"end", at.end}});
    } catch (const Error& e) {
        alerts->raise("HostAnchorFailed", std::string("cannot write the ledger checkpoint: ") + e.what());
    }
}

// For node_exporter's textfile collector (metrics.hpp), every check_interval.
void Daemon::write_metrics() {
    const std::string path = cfg.text("metrics_textfile");
    if (path.empty()) return;
    try {
        write_textfile(path, prometheus_metrics(status()));
        metrics_failed_ = false;
    } catch (const Error& e) {
        if (!metrics_failed_) alerts->raise("MetricsFailed", e.what());  // once until it works again
        metrics_failed_ = true;
    }
}

void Daemon::stop_anchor_thread() {
    stopping = true;
    anchor_cv_.notify_all();
    if (anchor_thread_.joinable()) anchor_thread_.join();
}

Daemon::~Daemon() { stop_anchor_thread(); }

void Daemon::start_background() {
    anchor_thread_ = std::thread([this] {
        const auto every = std::chrono::seconds(std::max<uint64_t>(1, cfg.seconds("check_interval")));
        std::unique_lock lk(anchor_mu_);
        while (!stopping) {
            anchor_cv_.wait_for(lk, every, [this] { return stopping.load(); });
            if (stopping) break;
            lk.unlock();
            update_anchor();
            write_metrics();
            if (ledger->seq() >= checkpoint_seq_ + kCheckpointRecords) save_ledger();
            lk.lock();
        }
    });
    monitor = std::make_unique<SpaceMonitor>(*vol, *alerts, SpaceSettings::from(cfg));
    vol->set_on_full([m = monitor.get()](uint64_t bytes) { return m->recycle_for(bytes); });
    // A member that failed while another was rebuilt gets the next spare
    // when that rebuild ends (promote_spare leaves a busy rebuilder alone).
    rebuilder = std::make_unique<Rebuilder>(*vol, *set, *log, *alerts, cfg.size("rebuild_max_rate"), [this] { promote_spare(); });
    for (size_t i : set->in_state({MemberState::Rebuilding})) rebuilder->start(i);
    // Like md's resync after an unclean shutdown: copies written at the moment
    // of the crash may differ; a repairing scrub makes them whole and equal.
    if (unclean_) start_scrub(true);
    if (set->healthy_count() < 2) promote_spare();
    if (archive) archive->start();
    control->start();
    write_metrics();
}

void Daemon::shutdown() {
    stopping = true;
    control.reset();
    if (scrub_thread.joinable()) scrub_thread.join();
    rebuilder.reset();
    vol->set_archive(nullptr);
    archive.reset();
    vol->set_on_full({});  // FUSE has stopped: no writer can be asking
    monitor.reset();
    stop_anchor_thread();
    // A textfile left behind would show a stopped set as it last was.
    if (const std::string m = cfg.text("metrics_textfile"); !m.empty()) ::unlink(m.c_str());
    log->append(audit_record("unmount", Caller::daemon(), mountpoint, 0));
    log->sync();
    set->bump_events(false);
    anchor_milestone();
    save_ledger();
}

nlohmann::json Daemon::status() {
    nlohmann::json j;
    j["set"] = uuid_str(set->set_uuid());
    j["mountpoint"] = mountpoint;
    const auto rb = rebuilder ? rebuilder->progress() : RebuildProgress{};
    const bool rebuilding = !set->in_state({MemberState::Rebuilding}).empty();
    j["state"] = rebuilding ? "rebuilding" : set->degraded() ? "degraded" : "clean";
    j["raid_disks"] = set->raid_disks();
    j["members"] = nlohmann::json::array();
    for (size_t i = 0; i < set->size(); ++i) {
        Member& m = set->member(i);
        if (m.state.load() == MemberState::Removed) continue;
        struct statvfs s {};
        ::fstatvfs(m.dirfd.get(), &s);
        nlohmann::json e = {{"path", m.path}, {"uuid", uuid_str(m.sb.member_uuid)}, {"state", state_name(m.state.load())},
                            {"role", m.state.load() == MemberState::Spare ? "spare" : "data"},
                            {"errors", m.errors.load()}, {"repaired", m.repaired.load()},
                            {"free_bytes", uint64_t(s.f_bavail) * s.f_frsize}, {"total_bytes", uint64_t(s.f_blocks) * s.f_frsize}};
        if (m.state.load() == MemberState::Failed) e["reason"] = m.fail_reason;
        j["members"].push_back(e);
    }
    if (rb.running) {
        j["rebuild"] = {{"member", rb.target_path}, {"done_bytes", rb.done_bytes}, {"total_bytes", rb.total_bytes},
                        {"files", rb.files}, {"skipped_files", rb.skipped_files},
                        {"percent", rb.total_bytes ? 100.0 * double(rb.done_bytes) / double(rb.total_bytes) : 0.0},
                        {"eta_seconds", rb.eta_seconds()}, {"seconds", rb.seconds}};
    }
    if (monitor) {
        const SpaceInfo sp = monitor->space();
        j["space"] = {{"free_bytes", sp.free}, {"total_bytes", sp.total}, {"threshold_bytes", sp.threshold}, {"low", sp.free < sp.threshold}};
    }
    {
        std::lock_guard lk(scrub_mu);
        if (!scrub.started.empty()) {
            j["scrub"] = {{"running", scrub.running}, {"repair", scrub.repair}, {"started", scrub.started}, {"finished", scrub.finished},
                          {"files", scrub.stats.files}, {"chunks", scrub.stats.chunks}, {"bad", scrub.stats.bad},
                          {"repaired", scrub.stats.repaired}, {"unrepairable", scrub.stats.unrepairable},
                          {"resynced", scrub.stats.resynced}, {"skipped", scrub.stats.skipped}, {"missing", scrub.stats.missing}, {"mismatched", scrub.stats.mismatched},
                          {"first_skipped", scrub.stats.first_skipped}, {"archived", scrub.stats.archived},
                          {"archive_missing", scrub.stats.archive_missing},
                          {"percent", scrub.total_bytes ? std::min(100.0, 100.0 * double(scrub.stats.bytes) / double(scrub.total_bytes)) : (scrub.running ? 0.0 : 100.0)}};
        }
    }
    j["alerts"] = nlohmann::json::array();
    for (const auto& a : alerts->recent())
        if (!a.acked) j["alerts"].push_back({{"id", a.id}, {"time", a.time}, {"alert", a.kind}, {"detail", a.detail}});
    j["audit_records"] = log->last_seq();
    const auto rc = vol->read_counters();
    j["io"] = {{"bytes_written", vol->bytes_written()}, {"bytes_read", rc.bytes}, {"chunks_authenticated", rc.chunks_authenticated},
               {"chunk_copies_failed", rc.chunk_copies_failed}};
    j["export_key"] = export_key_;
    if (archive) j["archive"] = archive->status();
    {
        // What this host holds of the set: it may trail by one check_interval.
        std::lock_guard lk(anchor_mu_);
        // The members matched it at mount (or the mount was refused); since
        // then it follows them, at most check_interval behind.
        j["anchor"] = {{"path", anchor->path()}, {"time", anchored_.time}, {"events", anchored_.events},
                       {"audit_seq", anchored_.audit_seq}, {"members_events", set->events()},
                       {"age_s", anchored_at_ ? ::time(nullptr) - anchored_at_ : -1}, {"failing", anchor_failed_},
                       {"matched_at_mount", true}};
    }
    return j;
}

nlohmann::json Daemon::handle(const nlohmann::json& req) {
    const std::string cmd = req.value("cmd", "");
    const std::string path = req.value("path", "");
    if (cmd == "status") return status();
    if (cmd == "alerts") {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& a : alerts->recent())
            out.push_back({{"id", a.id}, {"time", a.time}, {"alert", a.kind}, {"detail", a.detail}, {"acked", a.acked}});
        return {{"alerts", out}};
    }
    if (cmd == "ack") {
        const uint64_t id = req.value("id", uint64_t(0));
        if (!alerts->ack(id, req.value("by", "nvrctl"))) throw Error(ENOENT, "", fmt::format("no alert with id {}", id));
        return nlohmann::json::object();
    }
    if (cmd.rfind("member-", 0) == 0 || cmd.rfind("spare-", 0) == 0) return handle_membership(cmd, req);
    if (cmd.rfind("archive-", 0) == 0) return handle_archive(cmd, req);
    if (cmd == "audit") {
        // nvrctl's own actions (backups, device decisions) go into the same log.
        auto rec = audit_record(req.value("event", "nvrctl"), peer_of(req), path, req.value("errno", 0));
        for (const char* k : {"to", "bytes", "files", "detail", "device", "uuid", "camera", "since", "until", "masked",
                              "mask_sha256", "reason", "sha256", "mask"})
            if (req.contains(k)) rec[k] = req[k];
        // The record as written: an evidence package carries it.
        return log->append(std::move(rec));
    }
    if (cmd == "alert") {
        alerts->raise(req.value("alert", "Alert"), req.value("detail", ""), path);
        return nlohmann::json::object();
    }
    if (cmd == "scrub") {
        start_scrub(req.value("repair", false));
        return nlohmann::json::object();
    }
    if (cmd == "ledger-baseline") return ledger_baseline(peer_of(req));
    if (cmd == "reload") {
        if (config_file.empty()) throw Error(EINVAL, "", "nvrfsd was started without a config file");
        Config fresh;
        fresh.load_file(config_file);
        monitor->reconfigure(SpaceSettings::from(fresh));
        alerts->set_hook(fresh.text("alert_hook"));
        rebuilder->set_max_rate(fresh.size("rebuild_max_rate"));
        cfg = fresh;
        return nlohmann::json::object();
    }
    throw Error(EINVAL, "", fmt::format("unknown request '{}'", cmd));
}

}  // namespace nvrfs
