// rebuild.hpp — fill a new or replacement member while recording goes on.
//
// The target first becomes a Rebuilding member, so every write from then on
// reaches it. The rebuilder then walks the tree and copies each file's stored
// bytes from a complete member under that file's exclusive lock (no write can
// slip between the copy and the switch-over), verifying nothing it cannot: the
// stored bytes are identical on every member, so a raw copy is exact. About
// once a second the target's checkpoint (.nvrfs/rebuild.checkpoint, the
// stored — encrypted — path of the last file copied) is written once the
// target's file system has made everything before it durable, so a restarted
// daemon resumes where it left off. Names that renames left while the walk
// ran are copied again (a rename can carry a name from where the walk has
// not been to where it has been; then no checkpoint is written, so that a
// restart walks from the start). When the walk is done, entries the target
// has but the source lacks are removed, the target's file system is synced
// and the target becomes Active, with no create or rename in flight: the set
// is clean again.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace nvrfs {

struct Member;

class Volume;
class MirrorSet;
class AuditLog;
class Alerts;

struct RebuildProgress {
    bool running = false;
    size_t target = 0;
    std::string target_path;
    uint64_t done_bytes = 0, total_bytes = 0, files = 0;
    uint64_t skipped_files = 0;  // already copied before a restart (checkpoint)
    double seconds = 0;  // since this run started
    double eta_seconds() const;
};

class Rebuilder {
public:
    // max_rate: bytes per second, 0 for no limit (like mdadm's speed_limit_max).
    // on_idle runs on the rebuild thread each time the last queued rebuild
    // has ended, done or not: a member that failed meanwhile is still
    // waiting for a spare (the daemon promotes one there).
    Rebuilder(Volume& vol, MirrorSet& set, AuditLog& log, Alerts& alerts, uint64_t max_rate, std::function<void()> on_idle = {});
    void set_max_rate(uint64_t bytes_per_second) { max_rate_ = bytes_per_second; }
    ~Rebuilder();
    Rebuilder(const Rebuilder&) = delete;
    Rebuilder& operator=(const Rebuilder&) = delete;

    // Queue a rebuild of member `target` (a Spare to promote, or a member already
    // Rebuilding after a restart). `then` runs after it finished successfully.
    void start(size_t target, std::function<void()> then = {});
    RebuildProgress progress() const;
    bool busy() const;

private:
    struct Job {
        size_t target;
        std::function<void()> then;
    };
    void run(const Job& job);
    struct Walk;
    std::optional<std::string> prepare(size_t target, const Member& src);
    void copy_tree(Walk& w, const std::string& dir);
    void copy_file(Walk& w, const std::string& rel, const std::string& path);
    void copy_entry(Walk& w, const std::string& path, const std::string& rel, bool dir);
    void copy_again(Walk& w, const std::string& path);
    Volume& vol_;
    MirrorSet& set_;
    AuditLog& log_;
    Alerts& alerts_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Job> queue_;
    RebuildProgress progress_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> max_rate_{0};
    std::function<void()> on_idle_;
    std::thread thread_;
};

}  // namespace nvrfs
