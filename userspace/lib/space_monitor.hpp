// space_monitor.hpp — periodic member health and free-space checks (5.2.8.1).
//
// Every `interval` it (1) fails members whose directory vanished or lost its
// superblock, (2) syncs the audit log, (3) compares the set's free space (the
// smallest member's) with min_free: crossing below raises SpaceLow once,
// crossing back raises SpaceRecovered; with recycling on it deletes the oldest
// recordings, first in first out, until free space is back above min_free.
#pragma once
#include "config.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace nvrfs {

class Volume;
class Alerts;
class AuditLog;

struct SpaceInfo {
    uint64_t total = 0, free = 0, threshold = 0;
};

class SpaceMonitor {
public:
    SpaceMonitor(Volume& vol, Alerts& alerts, AuditLog& log, MinFree min_free, bool recycle, std::chrono::seconds interval);
    ~SpaceMonitor();
    SpaceMonitor(const SpaceMonitor&) = delete;
    SpaceMonitor& operator=(const SpaceMonitor&) = delete;

    void check_once();
    SpaceInfo space() const;
    void reconfigure(MinFree min_free, bool recycle, std::chrono::seconds interval);

private:
    void recycle_oldest(SpaceInfo info);
    Volume& vol_;
    Alerts& alerts_;
    AuditLog& log_;
    MinFree min_free_;
    bool recycle_;
    std::chrono::seconds interval_;
    bool low_ = false;
    mutable std::mutex mu_;  // guards the settings and stop_
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace nvrfs
