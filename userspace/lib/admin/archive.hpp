// archive.hpp — the archive tier: recordings move, still encrypted and
// authenticated, to an S3 store (Ceph radosgw, or any S3 a site runs).
//
// Promises:
//  * what moves is a file's stored bytes exactly (header and sealed chunks),
//    one object per file, named `PREFIX/<set uuid>/<file id>`: the store never
//    sees a name or a byte of plaintext, and the file id (random, fixed for
//    the file's life) keeps the object when a recorder renames a segment;
//  * a file is switched to its archived form only after its object is
//    complete and read back and authenticated end to end (Volume::archive);
//  * closed files whose last write is older than `archive_after` move; below
//    `archive_when_free_below` free the oldest move first, whatever their
//    age; archived files older than `archive_retention` are deleted;
//  * an unreachable or refusing store raises ArchiveUnreachable once, is
//    retried with backoff (5 s doubling to 5 min), and never holds up a
//    writer: all of this runs on its own thread;
//  * every move, recall and deletion in the archive is an audit record;
//    objects to delete wait in `<state_dir>/<uuid>.archive-forget` until the
//    store has taken the deletion, across restarts;
//  * reads of archived files fetch 4 MiB blocks (HTTP Range) into a local
//    cache (`archive_cache` bytes, least recently used out) and fetch the
//    next three blocks ahead, in parallel; every chunk is authenticated at every read.
#pragma once
#include "admin/config.hpp"
#include "admin/space_monitor.hpp"
#include "base/io.hpp"
#include "store/volume.hpp"
#include "transfer/s3_client.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <thread>

namespace nvrfs {

class Alerts;
class AuditLog;

struct ArchiveSettings {
    std::string bucket, prefix, endpoint, credentials;
    uint64_t after = 7 * 86400, retention = 365 * 86400, max_rate = 0, cache = 2ull << 30;
    MinFree when_free_below{true, 20};
    std::chrono::seconds interval{60};  // between passes
    std::chrono::seconds check{5};      // between looks at free space
    // nullopt when `archive` is empty; throws Error when it is set but
    // incomplete (no endpoint, credentials unreadable or too open).
    static std::optional<ArchiveSettings> from(const Config& cfg);
    std::string target() const { return "s3://" + bucket + (prefix.empty() ? "" : "/" + prefix); }
};

class ArchiveTier : public ArchiveStore {
public:
    ArchiveTier(Volume& vol, Alerts& alerts, AuditLog& log, ArchiveSettings s, const std::string& set_uuid,
                const std::string& state_dir);
    ~ArchiveTier() override;
    ArchiveTier(const ArchiveTier&) = delete;
    ArchiveTier& operator=(const ArchiveTier&) = delete;
    void start();  // the mover thread (after nvrfsd forked)

    // ArchiveStore (volume.hpp)
    std::unique_ptr<Upload> upload(const FileId& id, uint64_t total) override;
    void read(const FileId& id, uint64_t total, uint64_t off, size_t len, uint8_t* out, bool fresh) override;
    std::string check(const FileId& id, uint64_t total) override;
    void forget(const FileId& id, const std::string& path, const std::string& why) override;
    std::string object_name(const FileId& id) const override;

    // Run a pass now (nvrctl archive now, space pressure); returns the
    // number of the pass that will answer it.
    uint64_t run_now();
    nlohmann::json status() const;

private:
    struct Candidate {
        std::string path;
        struct timespec mtime;
        uint64_t stored;
        std::string id;  // hex file id
    };
    struct Walk {
        std::vector<Candidate> local, archived;
        uint64_t bytes_local = 0, bytes_archived = 0;
    };
    // What status shows of the namespace, as the last pass left it.
    struct Tally {
        uint64_t files_local = 0, bytes_local = 0, files_archived = 0, bytes_archived = 0;
    };
    // The set's size, free space and archive_when_free_below in bytes.
    struct Room {
        uint64_t total = 0, free = 0, want = 0;
    };
    Room room() const;
    void loop();
    void pass();
    Walk walk();
    void expire(const Walk& w, Tally& t);
    void move(const Walk& w, Tally& t);
    void drain_forgotten();
    void replaced(const std::string& hid);  // a new object of that file is complete
    void save_forgotten();
    // Runs an S3 request; an S3Error is noted (ArchiveUnreachable, backoff)
    // and thrown on as Error(EIO), but a missing object as ENOENT and one
    // shorter than asked as EBADMSG, neither noted (the store answered).
    void s3(const std::string& what, const std::function<void()>& f);
    void note_error(const std::string& what, const S3Error& e);
    void note_ok();
    // The read cache.
    std::string cache_file(const FileId& id, uint64_t block) const;
    bool cached(const FileId& id, uint64_t block, uint64_t off, size_t len, uint8_t* out);
    Bytes fetch_block(const FileId& id, uint64_t total, uint64_t block);
    // Blocks that no longer hold the file's object: all of a file's when its
    // object goes or is replaced, those a read found not authentic.
    void uncache(const std::string& hid);  // hex(id)
    void uncache(const FileId& id, uint64_t off, uint64_t len);
    // Under cache_mu_. unindex_locked forgets a block's entry (true if there
    // was one); uncache_locked also removes its file, and takes the name by
    // value: callers pass the index's own strings, which it erases.
    bool unindex_locked(const std::string& name);
    void uncache_locked(std::string name);
    void prefetch(const FileId& id, uint64_t total, uint64_t block);
    void prefetch_loop();

    Volume& vol_;
    Alerts& alerts_;
    AuditLog& log_;
    ArchiveSettings s_;
    std::string set_uuid_, forget_file_, cache_dir_;  // names in state_dir
    UniqueFd state_fd_, cache_fd_;
    std::unique_ptr<S3Client> client_;

    mutable std::mutex mu_;  // guards everything below
    std::condition_variable cv_;
    bool stop_ = false, running_ = false, reachable_ = true;
    uint64_t wanted_ = 0, done_ = 0;  // passes asked for / finished
    std::chrono::steady_clock::time_point next_try_{};
    std::chrono::seconds backoff_{0};
    std::string last_error_, last_error_at_, last_pass_at_;
    uint64_t moved_files_ = 0, moved_bytes_ = 0, deleted_ = 0, expired_ = 0, queue_ = 0;
    double rate_ = 0;  // bytes per second of the last pass that moved anything
    Tally tally_;
    struct Forgotten {
        std::string id, path, why;
    };
    std::deque<Forgotten> forgotten_;
    std::map<std::string, time_t> recalled_;  // file id -> when it was recalled

    std::mutex cache_mu_;  // the cache index
    std::list<std::string> lru_;  // most recent first
    std::map<std::string, std::pair<uint64_t, std::list<std::string>::iterator>> cache_;
    uint64_t cache_bytes_ = 0;
    std::deque<std::tuple<FileId, uint64_t, uint64_t>> prefetch_q_;  // guarded by cache_mu_
    std::condition_variable prefetch_cv_;
    std::set<std::string> inflight_;  // blocks being fetched (guarded by cache_mu_)
    std::condition_variable cache_cv_;

    std::thread thread_;
    std::vector<std::thread> prefetch_threads_;
};

}  // namespace nvrfs
