// mirror_set.hpp — two or more members that hold identical stored bytes.
//
// Promises:
//  * assemble() accepts only members of one set, unlocked by this host's key,
//    with authentic superblocks; a member whose event counter lags the others
//    is stale: it is resynced from a current member before use, never trusted.
//    The superblock, not the config file, says what a member is: data member,
//    member being rebuilt, or hot spare.
//  * Member states: Active members serve reads and writes; Rebuilding members
//    receive every write but serve no read until their rebuild completes;
//    Spare members wait to replace a failed one; Failed and Removed ones are
//    left alone.
//  * fan_out() runs one operation on every writable member and combines the
//    results the way a RAID 1 must: success if at least one Active member
//    succeeded; members that failed with a media error (EIO, EROFS, a removed
//    directory, ENOSPC on a member full while its peers are not, ...) are
//    marked failed and the caller never sees their error. ENOSPC on a member
//    as full as its peers is the set being full: no member is failed and the
//    caller gets ENOSPC. When no member succeeds, the error is returned and
//    none is failed.
//  * Failing a member bumps the event counter on the survivors so the failed
//    one is recognised as stale when it comes back.
//  * Member slots are never reused or moved, so other threads may iterate
//    them while a member is added (slot count is published last).
// Lock order: MirrorSet::mu_ is a leaf lock; handlers run without it held.
#pragma once
#include "base/io.hpp"
#include "store/keys.hpp"
#include "store/superblock.hpp"
#include "base/worker_pool.hpp"

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nvrfs {

constexpr size_t kMaxMembers = 16;  // data members, spares and removed ones together

enum class MemberState { Active, Rebuilding, Spare, Failed, Removed };
const char* state_name(MemberState s);

struct Member {
    std::string path;
    UniqueFd dirfd;
    Superblock sb;  // guarded by MirrorSet::mu_ after assembly
    std::atomic<MemberState> state{MemberState::Active};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> repaired{0};
    std::atomic<uint32_t> read_files{0};  // open files whose reads this member serves (ReadAffinity)
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
    // The same with another way to each member's master key (the recovery
    // key: store/recovery.hpp); every superblock's MAC must still verify.
    using Unwrap = std::function<SecretKey(const Superblock& sb, const std::string& where)>;
    static std::unique_ptr<MirrorSet> assemble(const std::vector<std::string>& paths, const Unwrap& unwrap,
                                               const AssembleOptions& opt, std::vector<std::string>* notes);

    size_t size() const { return count_.load(std::memory_order_acquire); }
    Member& member(size_t i) { return *slots_[i]; }
    const Member& member(size_t i) const { return *slots_[i]; }
    bool healthy(size_t i) const { return slots_[i]->state.load() == MemberState::Active; }
    std::vector<size_t> healthy_members() const { return in_state({MemberState::Active}); }
    std::vector<size_t> writable_members() const { return in_state({MemberState::Active, MemberState::Rebuilding}); }
    std::vector<size_t> in_state(std::initializer_list<MemberState> states) const;
    size_t healthy_count() const { return healthy_members().size(); }
    // How many complete copies the set is meant to have (like mdadm's
    // raid-disks): the data members at assembly, plus members added since.
    size_t raid_disks() const { return raid_disks_.load(); }
    bool degraded() const { return healthy_count() < raid_disks(); }
    // By path, or by same directory; removed slots are not found.
    std::optional<size_t> find(const std::string& path) const;
    const KeySet& keys() const { return keys_; }
    const Uuid& set_uuid() const { return set_uuid_; }

    void set_fail_handler(FailHandler h) { on_fail_ = std::move(h); }
    void set_note_handler(NoteHandler h) { on_note_ = std::move(h); }

    // fn(k) for k in [0, n) on this thread and any free worker (worker_pool.hpp).
    void parallel_for(size_t n, const std::function<void(size_t)>& fn);
    // op(index, member) on every writable member, one after the other (a
    // metadata call costs less than handing it to another thread); 0 or
    // -errno (see above).
    int fan_out(const std::string& what, const std::string& path, const std::function<int(size_t, Member&)>& op);
    // Combine already collected per-member results (index, -errno or 0).
    int combine(const std::string& what, const std::string& path, const std::vector<std::pair<size_t, int>>& results);

    void fail(size_t idx, int err, const std::string& context);
    // The same at the administrator's word, and recorded on the member
    // itself: it stays out at later mounts until it is added back.
    void fail_by_admin(size_t idx, const std::string& context);
    // Is member idx out of space while an active peer clearly is not? Then
    // ENOSPC there is a member fault; otherwise the whole set is full.
    bool full_alone(size_t idx) const;
    // Is the member still there (directory not removed, superblock present)?
    bool alive(size_t idx) const;
    // Record a new event on all writable members (mount, clean unmount, failure).
    void bump_events(bool dirty);
    // The highest event counter of the members taking part.
    uint64_t events() const;

    // Administration. Each throws Error with a clear message on bad input.
    // An empty directory (or a spare of this set) becomes a member in `role`
    // state: Spare, or Rebuilding (a new data member to be filled).
    // `grow`: the set is meant to have one more copy from now on (member add).
    // A directory whose slot was removed may be added again.
    size_t add_member(const std::string& path, MemberState role, bool grow = false);
    void set_state(size_t idx, MemberState s);  // also records it in the superblock
    void remove_member(size_t idx);             // only Failed or Spare members

private:
    MirrorSet() = default;
    void write_sb(Member& m);  // mu_ held
    std::array<std::unique_ptr<Member>, kMaxMembers> slots_;
    std::atomic<size_t> count_{0};
    std::atomic<size_t> raid_disks_{0};
    KeySet keys_;
    Uuid set_uuid_{};
    mutable std::mutex mu_;
    std::once_flag pool_once_;
    std::unique_ptr<WorkerPool> pool_;
    FailHandler on_fail_;
    NoteHandler on_note_;
};

// Which member serves the reads of one open file. A file's reads stay on one
// member, so that member's disk readahead serves the next ones (as md's raid1
// keeps a sequential reader on one disk; alternating members would make every
// disk read ahead data another disk delivers); files are spread over the
// members by how many each already serves, the first member on a tie.
class ReadAffinity {
public:
    ReadAffinity() = default;
    ReadAffinity(const ReadAffinity&) = delete;
    ReadAffinity& operator=(const ReadAffinity&) = delete;
    ~ReadAffinity();
    // `readers`: the members that may serve this read (healthy, holding the file).
    size_t pick(MirrorSet& set, const std::vector<size_t>& readers);

private:
    std::mutex mu_;
    Member* member_ = nullptr;
    size_t index_ = 0;
};

// Make empty directories the members of a new set (superblocks, root directory
// IV). Every member is checked before any is written. Returns the set UUID.
Uuid create_set(const std::vector<std::string>& members, const SecretKey& host_key);

// Errors that mean the member itself is unusable, not that the request was wrong.
bool is_media_error(int err);

}  // namespace nvrfs
