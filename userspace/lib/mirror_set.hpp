// mirror_set.hpp — two or more members that hold identical stored bytes.
//
// Promises:
//  * assemble() accepts only members of one set, unlocked by this host's key,
//    with authentic superblocks; a member whose event counter lags the others
//    is stale: it is resynced from a current member before use, never trusted.
//  * fan_out() runs one operation on every healthy member and combines the
//    results the way a RAID 1 must: success if at least one member succeeded;
//    members that failed with a media error (EIO, ENOSPC, EROFS, a removed
//    directory, ...) are marked failed and the caller never sees their error.
//    When no member succeeds, the error is returned and no member is failed.
//  * Failing a member bumps the event counter on the survivors so the failed
//    one is recognised as stale when it comes back.
// Lock order: MirrorSet::mu_ is a leaf lock; handlers run without it held.
#pragma once
#include "io.hpp"
#include "keys.hpp"
#include "superblock.hpp"
#include "worker_pool.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nvrfs {

enum class MemberState { Active, Failed };
const char* state_name(MemberState s);

struct Member {
    std::string path;
    UniqueFd dirfd;
    Superblock sb;
    std::atomic<MemberState> state{MemberState::Active};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> repaired{0};
    bool stale = false;       // found lagging at assembly and not resynced (read-only inspection)
    std::string fail_reason;  // guarded by MirrorSet::mu_
};

struct AssembleOptions {
    bool allow_degraded = false;  // start even if a configured member is missing
    bool resync = true;           // false: read-only inspection, stale members are only reported
};

class MirrorSet {
public:
    // (member index, errno, what was being done)
    using FailHandler = std::function<void(size_t, int, const std::string&)>;
    using NoteHandler = std::function<void(const std::string& kind, const std::string& detail)>;

    // Throws Error with a one-line explanation on any inconsistency.
    // `notes` receives what was repaired during assembly (resynced members, ...).
    static std::unique_ptr<MirrorSet> assemble(const std::vector<std::string>& paths, const SecretKey& host_key,
                                               const AssembleOptions& opt, std::vector<std::string>* notes);

    size_t size() const { return members_.size(); }
    Member& member(size_t i) { return *members_[i]; }
    const Member& member(size_t i) const { return *members_[i]; }
    bool healthy(size_t i) const { return members_[i]->state.load() == MemberState::Active; }
    std::vector<size_t> healthy_members() const;
    size_t healthy_count() const { return healthy_members().size(); }
    const KeySet& keys() const { return keys_; }
    const Uuid& set_uuid() const { return set_uuid_; }

    void set_fail_handler(FailHandler h) { on_fail_ = std::move(h); }
    void set_note_handler(NoteHandler h) { on_note_ = std::move(h); }

    // op(index, member) on every healthy member at once; op must not throw.
    // Returns (member index, 0 or -errno) for each.
    std::vector<std::pair<size_t, int>> run_parallel(const std::vector<size_t>& members,
                                                     const std::function<int(size_t)>& op);

    // op(index, member) returns 0 or -errno. Returns 0 or -errno (see above).
    int fan_out(const std::string& what, const std::string& path, const std::function<int(size_t, Member&)>& op);
    // Combine already collected per-member results (index, -errno or 0).
    int combine(const std::string& what, const std::string& path, const std::vector<std::pair<size_t, int>>& results);

    void fail(size_t idx, int err, const std::string& context);
    // Is the member still there (directory not removed, superblock present)?
    bool alive(size_t idx) const;
    // Record a new event on all healthy members (mount, clean unmount, failure).
    void bump_events(bool dirty);

private:
    MirrorSet() = default;
    std::vector<std::unique_ptr<Member>> members_;
    KeySet keys_;
    Uuid set_uuid_{};
    std::mutex mu_;
    std::once_flag pool_once_;
    std::unique_ptr<WorkerPool> pool_;
    FailHandler on_fail_;
    NoteHandler on_note_;
};

// Make empty directories the members of a new set (superblocks, root directory
// IV). Every member is checked before any is written. Returns the set UUID.
Uuid create_set(const std::vector<std::string>& members, const SecretKey& host_key);

// Errors that mean the member itself is unusable, not that the request was wrong.
bool is_media_error(int err);

}  // namespace nvrfs
