// daemon.hpp — everything one mounted nvrfs set owns, in dependency order.
//
// Members are assembled and checked before anything is mounted, so bad input
// (foreign member, wrong host key, missing key, bad config) fails with a clear
// message and nothing written. Destruction order is the reverse of creation.
#pragma once
#include "alerts.hpp"
#include "audit_log.hpp"
#include "config.hpp"
#include "mirror_set.hpp"
#include "space_monitor.hpp"
#include "volume.hpp"

#include <memory>
#include <string>

namespace nvrfs {

struct Daemon {
    Config cfg;
    std::string mountpoint;
    std::unique_ptr<MirrorSet> set;
    std::unique_ptr<AuditLog> log;
    std::unique_ptr<Alerts> alerts;
    std::unique_ptr<Volume> vol;
    std::unique_ptr<SpaceMonitor> monitor;  // started after daemonizing: fork keeps no threads

    // Assemble the set and open the audit log. Throws Error on bad input.
    static std::unique_ptr<Daemon> prepare(const Config& cfg, const std::string& mountpoint);
    void start_monitor();
    // Stop background work and mark the members clean.
    void shutdown();
};

}  // namespace nvrfs
