// alerts.hpp — the one alert path every module uses.
//
// An alert is a named event (MemberFailed, TamperDetected, SpaceLow, ...). It
// is written to the audit log, to syslog, and, when configured, handed to a
// hook program (run with /bin/sh -c, environment NVRFS_ALERT, NVRFS_DETAIL,
// NVRFS_PATH, NVRFS_TIME, NVRFS_SET) that can mail, beep or call a VMS.
// The hook runs asynchronously: a slow hook never stalls recording.
#pragma once
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace nvrfs {

class AuditLog;

namespace alert {
inline constexpr const char* MemberFailed = "MemberFailed";
inline constexpr const char* MemberInconsistent = "MemberInconsistent";
inline constexpr const char* MemberResynced = "MemberResynced";
inline constexpr const char* MemberMissing = "MemberMissing";
inline constexpr const char* TamperDetected = "TamperDetected";
inline constexpr const char* TamperRepaired = "TamperRepaired";
inline constexpr const char* SpaceLow = "SpaceLow";
inline constexpr const char* SpaceRecovered = "SpaceRecovered";
inline constexpr const char* Recycled = "Recycled";
inline constexpr const char* AuditLogRecovered = "AuditLogRecovered";
inline constexpr const char* UncleanShutdown = "UncleanShutdown";
inline constexpr const char* RollbackDetected = "RollbackDetected";
inline constexpr const char* RollbackAccepted = "RollbackAccepted";
inline constexpr const char* HostAnchorCreated = "HostAnchorCreated";
}  // namespace alert

struct Alert {
    uint64_t id;
    std::string time, kind, detail, path;
    bool acked = false;
};

class Alerts {
public:
    Alerts(AuditLog& log, std::string hook, std::string set_uuid);
    void raise(const std::string& kind, const std::string& detail, const std::string& path = "");
    std::vector<Alert> recent() const;
    // Acknowledge one alert (or all with id 0); false if there is no such alert.
    bool ack(uint64_t id, const std::string& by);
    void set_hook(std::string hook);

private:
    void run_hook(const Alert& a) const;
    AuditLog& log_;
    std::string hook_, set_uuid_;
    mutable std::mutex mu_;
    std::deque<Alert> recent_;
    uint64_t next_id_ = 1;
};

}  // namespace nvrfs
