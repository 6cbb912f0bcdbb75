#include "daemon.hpp"

#include "error.hpp"

#include <fmt/format.h>

namespace nvrfs {

std::unique_ptr<Daemon> Daemon::prepare(const Config& cfg, const std::string& mountpoint) {
    auto d = std::make_unique<Daemon>();
    d->cfg = cfg;
    d->mountpoint = mountpoint;
    const auto members = cfg.list("member");
    if (members.empty()) throw Error(EINVAL, "", "no members configured (give --member DIR at least twice, or --config FILE)");
    const SecretKey host = load_host_key(cfg.text("host_key"));
    std::vector<std::string> notes;
    d->set = MirrorSet::assemble(members, host, AssembleOptions{cfg.boolean("degraded")}, &notes);
    d->log = std::make_unique<AuditLog>(*d->set, &notes);
    d->alerts = std::make_unique<Alerts>(*d->log, cfg.text("alert_hook"), uuid_str(d->set->set_uuid()));
    d->vol = std::make_unique<Volume>(*d->set, *d->log, *d->alerts);

    Alerts& alerts = *d->alerts;
    MirrorSet& set = *d->set;
    set.set_fail_handler([&alerts, &set](size_t i, int err, const std::string& ctx) {
        alerts.raise(alert::MemberFailed,
                     fmt::format("member {} failed ({}: {}); recording continues on {} member(s)", set.member(i).path, ctx,
                                 errno_name(err), set.healthy_count()));
    });
    set.set_note_handler([&alerts](const std::string& kind, const std::string& detail) { alerts.raise(kind, detail); });

    bool unclean = false;
    for (size_t i = 0; i < set.size(); ++i) unclean |= set.member(i).sb.dirty;
    set.bump_events(true);
    auto rec = audit_record("mount", Caller::daemon(), mountpoint, 0);
    rec["set"] = uuid_str(set.set_uuid());
    rec["members"] = members;
    d->log->append(std::move(rec));
    for (const auto& n : notes) {
        const auto colon = n.find(':');
        alerts.raise(n.substr(0, colon), n.substr(colon + 2));
    }
    if (unclean)
        alerts.raise(alert::UncleanShutdown,
                     "the set was not cleanly unmounted (crash, power cut or killed daemon): write sessions open at that "
                     "moment have no closing record; reads verify every chunk");
    if (set.size() < 2) alerts.raise(alert::MemberMissing, "the set runs with a single member: no redundancy");
    return d;
}

void Daemon::start_monitor() {
    monitor = std::make_unique<SpaceMonitor>(*vol, *alerts, *log, cfg.min_free(), cfg.boolean("recycle"),
                                             std::chrono::seconds(cfg.seconds("check_interval")));
}

void Daemon::shutdown() {
    monitor.reset();
    log->append(audit_record("unmount", Caller::daemon(), mountpoint, 0));
    log->sync();
    set->bump_events(false);
}

}  // namespace nvrfs
