// space_monitor.hpp — periodic member health and free-space checks (5.2.8.1),
// and recycling that keeps a full recorder recording.
//
// Every `interval` it (1) fails members whose directory vanished or lost its
// superblock, (2) compares the set's free space (the smallest member's) with
// min_free: crossing below raises SpaceLow once, crossing back raises
// SpaceRecovered. (The audit log is made durable on the same interval by the
// host anchor, which records only a head that its sync covered.)
//
// Recycling (`recycle = yes`) is a recorder's steady state, not an emergency:
//  * it starts before the disk is full: it keeps min_free plus a headroom of
//    three intervals of the write rate it measures (plus 1% of the set), so
//    writers do not meet a full disk between two checks;
//  * when a write still finds no room, the volume calls recycle_for() on the
//    writer's thread, which frees space before the writer sees ENOSPC;
//  * it deletes only recordings: files whose extension is in `recycle_ext`,
//    inside a top-level directory matching one of `recycle_dirs` (globs),
//    never a file at the top, never one that is open; a database, its WAL,
//    a config file or anything else is never touched;
//  * oldest first by modification time to the nanosecond (then by path), each
//    deletion an audit record with its age.
#pragma once
#include "admin/config.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace nvrfs {

class Volume;
class Alerts;

struct SpaceInfo {
    uint64_t total = 0, free = 0, threshold = 0, headroom = 0;
};

struct SpaceSettings {
    MinFree min_free;
    bool recycle = false;
    std::chrono::seconds interval{5};
    std::vector<std::string> recycle_dirs;  // globs for top-level directory names
    std::vector<std::string> recycle_ext;   // lower-case extensions without the dot
    static SpaceSettings from(const Config& cfg);
};

// The order recycling and archiving take recordings in: oldest first by
// modification time to the nanosecond, then by path.
inline bool oldest_first(const struct timespec& a, const std::string& pa, const struct timespec& b, const std::string& pb) {
    if (a.tv_sec != b.tv_sec) return a.tv_sec < b.tv_sec;
    if (a.tv_nsec != b.tv_nsec) return a.tv_nsec < b.tv_nsec;
    return pa < pb;
}

// Is `path` ("/cam1/2026/x.mp4") a recording that recycling may delete?
bool recyclable_path(const std::string& path, const SpaceSettings& s);

class SpaceMonitor {
public:
    SpaceMonitor(Volume& vol, Alerts& alerts, SpaceSettings settings);
    ~SpaceMonitor();
    SpaceMonitor(const SpaceMonitor&) = delete;
    SpaceMonitor& operator=(const SpaceMonitor&) = delete;

    void check_once();
    SpaceInfo space() const;
    void reconfigure(SpaceSettings settings);
    // Free at least `bytes` on every member by recycling; false when nothing
    // could be deleted (recycling off, or nothing recyclable left).
    bool recycle_for(uint64_t bytes);

private:
    // Delete oldest recordings until the set has `want_free` bytes free; true
    // when that much is free already or something was deleted.
    bool recycle_until(uint64_t want_free, const SpaceSettings& s);
    SpaceSettings settings() const;
    Volume& vol_;
    Alerts& alerts_;
    SpaceSettings settings_;  // guarded by mu_
    bool low_ = false;
    uint64_t last_written_ = 0;
    std::chrono::steady_clock::time_point last_check_;
    uint64_t rate_ = 0;  // bytes per second written, last interval (guarded by mu_)
    mutable std::mutex mu_;  // guards the settings, the rate and stop_
    std::mutex recycle_mu_;  // one recycler at a time (monitor thread or a writer)
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace nvrfs
