// archive_mover.cpp — the archive tier's thread: which files move, which
// archived files expire, which objects are deleted, and what status says.
#include "admin/archive.hpp"

#include "audit/alerts.hpp"
#include "audit/audit_log.hpp"
#include "base/caller.hpp"
#include "base/error.hpp"
#include "base/plain_path.hpp"
#include "base/test_delay.hpp"
#include "store/chunk_layout.hpp"

#include <algorithm>
#include <ctime>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/statvfs.h>

namespace nvrfs {

static const int kPassDelayMs = env_ms("NVRFS_ARCHIVE_PASS_DELAY_MS");

uint64_t ArchiveTier::run_now() {
    std::lock_guard lk(mu_);
    next_try_ = {};  // an administrator's request skips the backoff
    // A pass already running may have walked past what the caller just did.
    wanted_ = std::max(wanted_, done_ + (running_ ? 2 : 1));
    cv_.notify_all();
    return wanted_;
}

ArchiveTier::Room ArchiveTier::room() const {
    const struct statvfs st = vol_.statfs();
    Room r;
    r.total = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
    r.free = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    r.want = s_.when_free_below.bytes(r.total);
    return r;
}

void ArchiveTier::loop() {
    auto last = std::chrono::steady_clock::now() - s_.interval;  // a first pass soon after mount
    std::unique_lock lk(mu_);
    while (!stop_) {
        cv_.wait_for(lk, s_.check, [&] { return stop_ || wanted_ > done_; });
        if (stop_) break;
        const auto now = std::chrono::steady_clock::now();
        const bool asked = wanted_ > done_;
        if (!asked && now < next_try_) continue;  // backing off
        lk.unlock();
        // Below archive_when_free_below (looked at every check_interval)?
        const bool due = asked || now - last >= s_.interval || [&] {
            const Room r = room();
            return r.free < r.want;
        }();
        lk.lock();
        if (!due) continue;
        running_ = true;
        const uint64_t answering = std::max(wanted_, done_ + 1);
        lk.unlock();
        last = now;
        try {
            pass();
        } catch (const std::exception& e) {
            std::lock_guard el(mu_);
            last_error_ = e.what();
            last_error_at_ = rfc3339_now();
        }
        lk.lock();
        running_ = false;
        done_ = answering;
        last_pass_at_ = rfc3339_now();
        cv_.notify_all();
    }
}

void ArchiveTier::pass() {
    try {
        s3("bucket " + s_.bucket, [&] { client_->ensure_bucket(); });
    } catch (const Error&) {
        return;  // noted; retried after the backoff
    }
    drain_forgotten();
    test_delay(kPassDelayMs);  // t39: a recall after the drain, before the moves
    const Walk w = walk();
    Tally t{w.local.size(), w.bytes_local, w.archived.size(), w.bytes_archived};
    expire(w, t);
    move(w, t);
    {
        std::lock_guard lk(mu_);
        tally_ = t;
    }
    drain_forgotten();
}

// Every regular file of the namespace, local or archived.
ArchiveTier::Walk ArchiveTier::walk() {
    Walk w;
    vol_.walk({"/"}, [&](const std::string& p, const struct stat& st) {
        if (!S_ISREG(st.st_mode)) return;
        Candidate c{p, st.st_mtim, stored_size(kFormatVersion, static_cast<uint64_t>(st.st_size)), {}};
        const auto h = vol_.header_at(p);
        if (h) c.id = hex(h->id);
        if (h && h->archived) {
            w.bytes_archived += c.stored;
            w.archived.push_back(std::move(c));
        } else {
            w.bytes_local += c.stored;
            w.local.push_back(std::move(c));
        }
    });
    auto by_age = [](const Candidate& a, const Candidate& b) { return oldest_first(a.mtime, a.path, b.mtime, b.path); };
    std::sort(w.local.begin(), w.local.end(), by_age);
    std::sort(w.archived.begin(), w.archived.end(), by_age);
    return w;
}

// archive_retention applies to the archive only: local files are never
// deleted here (recycling, if on, is the members' own rule).
void ArchiveTier::expire(const Walk& w, Tally& t) {
    const time_t now = ::time(nullptr);
    for (const auto& c : w.archived) {
        const int64_t age = static_cast<int64_t>(now - c.mtime.tv_sec);
        if (age < static_cast<int64_t>(s_.retention)) break;
        if (vol_.is_open(c.path)) continue;
        try {
            vol_.unlink(c.path, Caller::daemon(), [&](nlohmann::json& r) {
                r["reason"] = "archive_retention";
                r["age_s"] = age;
            });
            t.files_archived--, t.bytes_archived -= c.stored;
            std::lock_guard lk(mu_);
            expired_++;
        } catch (const Error&) {
            continue;
        }
    }
}

void ArchiveTier::move(const Walk& w, Tally& t) {
    const time_t now = ::time(nullptr);
    const Room r = room();
    uint64_t free = r.free;
    // Oldest first (w.local is sorted): under pressure they move whatever
    // their age, until a little more than the threshold is free, so the
    // next pass is not at once.
    const uint64_t target = r.free < r.want ? r.want + r.total / 100 : 0;
    uint64_t moved = 0, bytes = 0, left = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& c : w.local) {
        bool old_enough = now - c.mtime.tv_sec >= static_cast<time_t>(s_.after);
        {
            // Recalled by the administrator: stays local for archive_after
            // from the recall (space pressure aside).
            std::lock_guard lk(mu_);
            const auto rc = recalled_.find(c.id);
            if (rc != recalled_.end() && now - rc->second < static_cast<time_t>(s_.after)) old_enough = false;
        }
        // A file being recorded waits; one being read moves (its readers
        // go on from the archive). Skipping readers let a playback or a
        // checksum run put the oldest recording behind newer ones.
        if ((!old_enough && free >= target) || vol_.is_open(c.path, true)) continue;
        {
            std::lock_guard lk(mu_);
            if (stop_ || !reachable_) {
                left++;
                continue;
            }
        }
        try {
            const uint64_t n = vol_.archive(c.path);
            if (!n) continue;
            moved++, bytes += n;
            free += n - kStoredChunk;
            t.files_local--, t.bytes_local -= c.stored;
            t.files_archived++, t.bytes_archived += c.stored;
        } catch (const Error& e) {
            std::lock_guard lk(mu_);
            last_error_ = e.what();
            last_error_at_ = rfc3339_now();
            left++;
        }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard lk(mu_);
    moved_files_ += moved, moved_bytes_ += bytes, queue_ = left;
    if (moved && secs > 0) rate_ = static_cast<double>(bytes) / secs;
}

// Objects of files that left the archive; each deletion is an audit record.
void ArchiveTier::drain_forgotten() {
    for (;;) {
        Forgotten f;
        {
            std::lock_guard lk(mu_);
            if (forgotten_.empty() || !reachable_ || stop_) return;
            f = forgotten_.front();
        }
        const auto id = unhex(f.id);
        FileId fid{};
        if (id && id->size() == fid.size()) std::copy(id->begin(), id->end(), fid.begin());
        const std::string key = object_name(fid);
        try {
            s3("DELETE " + key, [&] { client_->remove(key); });
        } catch (const Error&) {
            return;  // kept; retried at the next pass
        }
        auto rec = audit_record("archive-delete", Caller::daemon(), f.path, 0);
        rec["object"] = key;
        rec["id"] = f.id;
        rec["reason"] = f.why;
        log_.append(std::move(rec));
        std::lock_guard lk(mu_);
        // The entry it took, wherever it is now.
        const auto it = std::find_if(forgotten_.begin(), forgotten_.end(),
                                     [&](const Forgotten& g) { return g.id == f.id && g.why == f.why; });
        if (it != forgotten_.end()) forgotten_.erase(it);
        deleted_++;
        save_forgotten();
    }
}

nlohmann::json ArchiveTier::status() const {
    std::lock_guard lk(mu_);
    nlohmann::json j;
    j["target"] = s_.target();
    j["endpoint"] = s_.endpoint;
    j["reachable"] = reachable_;
    j["running"] = running_;
    j["passes"] = done_;
    j["last_pass"] = last_pass_at_;
    j["pass_requested"] = wanted_;
    j["files_local"] = tally_.files_local;
    j["bytes_local"] = tally_.bytes_local;
    j["files_archived"] = tally_.files_archived;
    j["bytes_archived"] = tally_.bytes_archived;
    j["queue"] = queue_;
    j["deletions_pending"] = forgotten_.size();
    j["moved_files"] = moved_files_;
    j["moved_bytes"] = moved_bytes_;
    j["expired_files"] = expired_;
    j["deleted_objects"] = deleted_;
    j["rate_bytes_per_s"] = static_cast<uint64_t>(rate_);
    j["last_error"] = last_error_;
    j["last_error_at"] = last_error_at_;
    j["archive_after_s"] = s_.after;
    j["archive_retention_s"] = s_.retention;
    return j;
}

}  // namespace nvrfs
