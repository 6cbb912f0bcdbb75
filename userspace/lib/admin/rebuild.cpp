#include "admin/rebuild.hpp"
#include "store/recovery.hpp"

#include "audit/alerts.hpp"
#include "audit/audit_log.hpp"
#include "base/error.hpp"
#include "base/plain_path.hpp"
#include "base/member_path.hpp"
#include "store/mirror_set.hpp"
#include "store/names.hpp"
#include "store/tree.hpp"
#include "store/volume.hpp"

#include <algorithm>
#include <chrono>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <memory>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace nvrfs {
namespace {

constexpr const char* kCheckpoint = ".nvrfs/rebuild.checkpoint";
using Clock = std::chrono::steady_clock;

std::vector<std::string> split(const std::string& p) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= p.size()) {
        size_t n = p.find('/', pos);
        if (n == std::string::npos) n = p.size();
        if (n > pos) out.push_back(p.substr(pos, n - pos));
        pos = n + 1;
    }
    return out;
}

// Depth-first order with siblings sorted by name is the component-wise order.
bool walk_le(const std::string& a, const std::string& b) { return split(a) <= split(b); }

std::set<std::string> names_in(int dirfd, const std::string& rel) {
    std::set<std::string> out;
    int fd = member_path::open_dir(dirfd, rel);
    if (fd < 0) return out;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(fd), ::closedir);
    if (!d) {
        ::close(fd);
        return out;
    }
    while (dirent* e = ::readdir(d.get())) {
        std::string n = e->d_name;
        if (n != "." && n != "..") out.insert(n);
    }
    return out;
}

uint64_t stored_bytes(int dirfd, const std::string& rel) {
    uint64_t total = 0;
    for (const auto& n : names_in(dirfd, rel)) {
        if (rel == "." && n == kMetaDir) continue;
        const std::string r = rel == "." ? n : rel + "/" + n;
        struct stat st {};
        if (member_path::stat(dirfd, r, st) < 0) continue;
        total += S_ISDIR(st.st_mode) ? stored_bytes(dirfd, r) : static_cast<uint64_t>(st.st_size);
    }
    return total;
}

// Everything written to the file system holding `dirfd` is durable: what the
// checkpoint and the switch to Active claim. On ext4 a checkpoint's own fsync
// did this as a side effect (ordered data); other file systems do not.
void sync_fs(int dirfd, const std::string& where) {
    if (::syncfs(dirfd) < 0) throw_errno(errno, where, "cannot sync");
}

// Remove what the target holds and the source does not (renames and unlinks
// that reached the target before the walk created the directory they were in).
void remove_extras(int src, int dst, const std::string& rel) {
    const auto have = names_in(dst, rel), want = names_in(src, rel);
    for (const auto& n : have) {
        if (rel == "." && n == kMetaDir) continue;
        const std::string r = rel == "." ? n : rel + "/" + n;
        struct stat st {};
        if (member_path::stat(dst, r, st) < 0) continue;
        if (!want.count(n)) {
            if (S_ISDIR(st.st_mode)) {
                UniqueFd sub(member_path::open_dir(dst, r));
                if (sub) clear_dir_at(sub.get(), [](const std::string&) { return false; }, r);
                member_path::rmdir(dst, r);
            } else {
                member_path::unlink(dst, r);
            }
        } else if (S_ISDIR(st.st_mode)) {
            remove_extras(src, dst, r);
        }
    }
}

// Renamed or removed since the walk listed it: where it went is copied
// again (take_renamed), and what is gone has nothing to copy.
bool moved_away(const Error& e) { return e.code() == ENOENT || e.code() == ENOTDIR; }

}  // namespace

double RebuildProgress::eta_seconds() const {
    if (done_bytes == 0 || seconds <= 0 || total_bytes <= done_bytes) return 0;
    return static_cast<double>(total_bytes - done_bytes) / (static_cast<double>(done_bytes) / seconds);
}

Rebuilder::Rebuilder(Volume& vol, MirrorSet& set, AuditLog& log, Alerts& alerts, uint64_t max_rate, std::function<void()> on_idle)
    : vol_(vol), set_(set), log_(log), alerts_(alerts), max_rate_(max_rate), on_idle_(std::move(on_idle)) {
    thread_ = std::thread([this] {
        for (;;) {
            Job job;
            {
                std::unique_lock lk(mu_);
                cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
                if (stop_) return;
                job = queue_.front();
                queue_.pop_front();
                progress_ = RebuildProgress{};
                progress_.running = true;
                progress_.target = job.target;
                progress_.target_path = set_.member(job.target).path;
            }
            try {
                run(job);
            } catch (const std::exception& e) {
                alerts_.raise("RebuildFailed", fmt::format("rebuild of {} stopped: {}", set_.member(job.target).path, e.what()));
            }
            bool idle;
            {
                std::lock_guard lk(mu_);
                progress_.running = false;
                idle = queue_.empty() && !stop_;
            }
            if (idle && on_idle_) on_idle_();
        }
    });
}

Rebuilder::~Rebuilder() {
    stop_ = true;
    cv_.notify_all();
    thread_.join();
}

void Rebuilder::start(size_t target, std::function<void()> then) {
    std::lock_guard lk(mu_);
    queue_.push_back({target, std::move(then)});
    cv_.notify_all();
}

RebuildProgress Rebuilder::progress() const {
    std::lock_guard lk(mu_);
    return progress_;
}

bool Rebuilder::busy() const {
    std::lock_guard lk(mu_);
    return progress_.running || !queue_.empty();
}

// One rebuild's walk over the namespace.
struct Rebuilder::Walk {
    size_t target;
    Member& t;
    Member& src;
    std::string checkpoint;  // stored path of the last file copied before a restart
    Clock::time_point begin = Clock::now(), last_cp = Clock::now();
    uint64_t copied = 0;     // bytes copied by this run (the rate limit's measure)
};

// A spare is emptied and joins the write set; a member left rebuilding by a
// restart resumes from its checkpoint. nullopt: failed or removed meanwhile.
std::optional<std::string> Rebuilder::prepare(size_t target, const Member& src) {
    Member& t = set_.member(target);
    std::string checkpoint;
    if (t.state.load() == MemberState::Spare) {
        // Start from nothing: keep only the superblock, then join the write set
        // together with a copy of the audit log, atomically for appenders.
        clear_dir_at(t.dirfd.get(), [](const std::string& n) { return n == kMetaDir; }, t.path);
        UniqueFd meta(member_path::open_dir(t.dirfd.get(), kMetaDir));
        if (meta) clear_dir_at(meta.get(), [](const std::string& n) { return n == "superblock"; }, t.path);
        log_.attach(target, [&] { set_.set_state(target, MemberState::Rebuilding); });
        alerts_.raise("SpareActivated", fmt::format("{} joins the set and is being rebuilt from {}", t.path, src.path));
    } else if (t.state.load() == MemberState::Rebuilding) {
        try {
            checkpoint = read_file_at(t.dirfd.get(), kCheckpoint, 4096);
        } catch (const Error&) {
        }
        alerts_.raise("RebuildResumed", fmt::format("rebuild of {} resumes{}", t.path, checkpoint.empty() ? " from the start" : " from its checkpoint"));
    } else {
        return std::nullopt;
    }
    return checkpoint;
}

void Rebuilder::copy_tree(Walk& w, const std::string& dir) {
    struct Entry {
        std::string rel, path;
        bool dir;
    };
    std::vector<Entry> entries;
    std::vector<std::string> names;
    try {
        names = vol_.readdir(dir);
    } catch (const Error& e) {
        if (moved_away(e)) return;
        throw;
    }
    for (const auto& n : names) {
        const std::string p = child_path(dir, n);
        try {
            const struct stat st = vol_.getattr(p, nullptr);
            // Everything else (files, symlinks, fifos, sockets) is one stored file.
            entries.push_back({vol_.stored_path(p), p, S_ISDIR(st.st_mode)});
        } catch (const Error&) {
            // deleted while we walk: nothing to copy
        }
    }
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return split(a.rel) < split(b.rel); });
    for (const auto& e : entries) {
        if (stop_) return;
        if (w.t.state.load() != MemberState::Rebuilding) throw Error(EIO, w.t.path, "the member being rebuilt failed");
        copy_entry(w, e.path, e.rel, e.dir);
    }
}

// One entry of the walk, or a name a rename left during it (copy_again).
void Rebuilder::copy_entry(Walk& w, const std::string& path, const std::string& rel, bool dir) {
    try {
        if (dir) {
            vol_.copy_dir_to(path, w.target);
            copy_tree(w, path);
        } else {
            copy_file(w, rel, path);
        }
    } catch (const Error& e) {
        if (!moved_away(e)) throw;
    }
}

// A name a rename left during the walk, copied again whatever the walk did.
void Rebuilder::copy_again(Walk& w, const std::string& path) {
    struct stat st {};
    std::string rel;
    try {
        st = vol_.getattr(path, nullptr);
        rel = vol_.stored_path(path);
    } catch (const Error& e) {
        if (moved_away(e)) return;
        throw;
    }
    copy_entry(w, path, rel, S_ISDIR(st.st_mode));
}

void Rebuilder::copy_file(Walk& w, const std::string& rel, const std::string& path) {
    uint64_t n = 0;
    const bool skipped = !w.checkpoint.empty() && walk_le(rel, w.checkpoint);  // copied before a restart
    if (skipped) {
        struct stat st {};
        if (member_path::stat(w.src.dirfd.get(), rel, st) == 0) n = static_cast<uint64_t>(st.st_size);
    } else {
        n = vol_.copy_file_to(path, w.target);
        if (Clock::now() - w.last_cp > std::chrono::seconds(1)) {
            sync_fs(w.t.dirfd.get(), w.t.path);  // what the checkpoint names is on the disk
            // Not once a rename was noted: a restart would not copy it again.
            vol_.unless_renamed([&] { write_file_atomic_at(w.t.dirfd.get(), kCheckpoint, rel.data(), rel.size(), 0600); });
            w.last_cp = Clock::now();
        }
    }
    {
        std::lock_guard lk(mu_);
        progress_.done_bytes += n;
        (skipped ? progress_.skipped_files : progress_.files)++;
        progress_.seconds = std::chrono::duration<double>(Clock::now() - w.begin).count();
    }
    if (skipped) return;
    w.copied += n;
    // Throttle: recording has priority over the rebuild.
    if (const uint64_t rate = max_rate_.load()) {
        const auto due = w.begin + std::chrono::duration<double>(double(w.copied) / double(rate));
        while (Clock::now() < due && !stop_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void Rebuilder::run(const Job& job) {
    const size_t target = job.target;
    Member& t = set_.member(target);
    const auto healthy = set_.healthy_members();
    if (healthy.empty()) throw Error(EIO, t.path, "no complete member to rebuild from");
    Member& src = set_.member(healthy.front());
    vol_.begin_rebuild_notes(t.state.load() == MemberState::Spare,
                             [&t] { member_path::unlink(t.dirfd.get(), kCheckpoint); });
    const std::unique_ptr<Volume, void (*)(Volume*)> notes(&vol_, [](Volume* v) { v->end_rebuild_notes(); });
    auto checkpoint = prepare(target, src);
    if (!checkpoint) return;  // failed or removed meanwhile
    Walk w{target, t, src, std::move(*checkpoint)};
    const uint64_t total = stored_bytes(src.dirfd.get(), ".");
    {
        std::lock_guard lk(mu_);
        progress_.total_bytes = total;
    }
    vol_.copy_dir_to("/", target);
    copy_tree(w, "/");
    if (stop_) return;  // daemon stopping: the checkpoint lets the next start resume
    // The recovery key goes along: any one member must be enough to recover.
    try {
        if (const auto w = read_recovery(src.dirfd.get(), src.path)) write_recovery(t.dirfd.get(), *w);
    } catch (const Error& e) {
        alerts_.raise("RecoveryKeyNotCopied", fmt::format("{}: the recovery key was not copied from {}: {}", t.path, src.path, e.what()));
    }
    w.checkpoint.clear();  // what is copied again is never skipped
    for (;;) {
        for (const auto& p : vol_.take_renamed()) copy_again(w, p);
        if (stop_) return;
        if (t.state.load() != MemberState::Rebuilding) throw Error(EIO, t.path, "the member being rebuilt failed");
        sync_fs(t.dirfd.get(), t.path);
        // With no create or rename in flight: what the target holds and the
        // source does not goes, and the target is complete.
        if (vol_.finish_rebuild([&] {
                remove_extras(src.dirfd.get(), t.dirfd.get(), ".");
                set_.set_state(target, MemberState::Active);
            }))
            break;
    }
    sync_fs(t.dirfd.get(), t.path);
    member_path::unlink(t.dirfd.get(), kCheckpoint);
    set_.bump_events(true);
    const auto p = progress();
    alerts_.raise("RebuildFinished", fmt::format("{} is complete: {} files copied, {} skipped (done before a restart), {} bytes in {:.1f} s; the set is {}", t.path,
                                                 p.files, p.skipped_files, p.done_bytes, p.seconds,
                                                 set_.degraded() ? "still degraded" : "clean"));
    if (job.then) job.then();
}

}  // namespace nvrfs
