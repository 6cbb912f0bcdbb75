// volume.hpp — the plaintext filesystem that nvrfsd shows, built on a mirror set.
//
// Promises:
//  * paths and contents are stored encrypted (names.hpp, chunk_crypto.hpp);
//  * a write returns only when its chunks are on every healthy member;
//  * a read returns only authentic bytes: a bad chunk on one member is read
//    from another, the bad copy is repaired and a TamperDetected alert raised;
//    with no good copy the read fails with EIO (and an alert), never forged data;
//  * every create, write session, rename, truncate, unlink, mkdir and rmdir is
//    audited once, with its result.
// Errors are thrown as Error; the FUSE edge turns them into -errno.
#pragma once
#include "audit/alerts.hpp"
#include "audit/audit_log.hpp"
#include "store/mirror_set.hpp"
#include "store/names.hpp"
#include "store/open_file.hpp"
#include "base/writer_first_lock.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace nvrfs {

// The archive tier (admin/archive.hpp) as the data path sees it: an object
// per file holding its stored bytes exactly (header and sealed chunks), so
// a chunk read from it authenticates like one read from a member.
class ArchiveStore {
public:
    virtual ~ArchiveStore() = default;
    struct Upload {
        virtual ~Upload() = default;
        virtual void part(ByteView stored) = 0;  // the next stored bytes, in order
        virtual void finish() = 0;               // returns when the object is complete
    };
    virtual std::unique_ptr<Upload> upload(const FileId& id, uint64_t total) = 0;
    // Stored bytes [off, off + len) of file `id`'s object (`total` long);
    // `fresh` bypasses the local cache and drops the blocks it covers (what
    // they gave did not authenticate, or the object is new or on its way
    // out). Throws Error(EIO) saying why.
    virtual void read(const FileId& id, uint64_t total, uint64_t off, size_t len, uint8_t* out, bool fresh) = 0;
    // Why file `id`'s object is not there in full, or "" (scrub).
    virtual std::string check(const FileId& id, uint64_t total) = 0;
    // File `id` no longer needs its object (recalled, unlinked, replaced).
    virtual void forget(const FileId& id, const std::string& path, const std::string& why) = 0;
    virtual std::string object_name(const FileId& id) const = 0;
};

class Volume {
public:
    Volume(MirrorSet& set, AuditLog& log, Alerts& alerts);

    struct stat getattr(const std::string& path, Handle* h);
    std::vector<std::string> readdir(const std::string& path);
    // The entries with what getattr would say of each (nullopt: ask getattr).
    std::vector<std::pair<std::string, std::optional<struct stat>>> readdir_plus(const std::string& path);
    // Every entry below the directories `roots`, depth first: `visit(path,
    // stat)` for each that is not a directory. Entries that vanish or cannot
    // be read meanwhile are passed over (scrub is what reports those).
    void walk(std::vector<std::string> roots, const std::function<void(const std::string&, const struct stat&)>& visit);
    void mkdir(const std::string& path, mode_t mode, const Caller& who);
    void rmdir(const std::string& path, const Caller& who);
    // `extra` adds fields to the audit record (recycling says why and how old).
    void unlink(const std::string& path, const Caller& who, const std::function<void(nlohmann::json&)>& extra = {});
    void rename(const std::string& from, const std::string& to, unsigned flags, const Caller& who);
    // With a handle (fchmod, fchown, futimens), the open file's copies change.
    void chmod(const std::string& path, mode_t mode, Handle* h = nullptr);
    void chown(const std::string& path, uid_t uid, gid_t gid, Handle* h = nullptr);
    void utimens(const std::string& path, const struct timespec ts[2], Handle* h = nullptr);
    void truncate(const std::string& path, uint64_t size, Handle* h, const Caller& who);

    // Symlinks (target stored encrypted like file data), fifos and sockets
    // are member regular files whose header says what they are. Device
    // nodes and hard links are refused (EPERM).
    void symlink(const std::string& target, const std::string& path, const Caller& who);
    std::string readlink(const std::string& path);
    void mknod(const std::string& path, mode_t mode, const Caller& who);

    std::unique_ptr<Handle> create(const std::string& path, mode_t mode, int flags, const Caller& who);
    std::unique_ptr<Handle> open(const std::string& path, int flags, const Caller& who);
    size_t read(Handle& h, uint8_t* buf, size_t size, uint64_t off);
    size_t write(Handle& h, const uint8_t* buf, size_t size, uint64_t off);
    void fsync(Handle& h, bool datasync);
    // fallocate(2) modes 0 and FALLOC_FL_KEEP_SIZE; others EOPNOTSUPP.
    void fallocate(Handle& h, int mode, uint64_t off, uint64_t len, const Caller& who);
    void release(std::unique_ptr<Handle> h);
    struct statvfs statfs();

    MirrorSet& mirror() { return set_; }

    // The archive tier (volume_archive.cpp). Set before use, or never.
    void set_archive(ArchiveStore* a) { archive_ = a; }
    // Move a closed regular file to the archive: upload its authentic stored
    // bytes, read the object back and authenticate every chunk, then mark
    // the header archived and punch its chunks but the last out of every
    // member. Returns the stored bytes moved; 0 when the file was skipped
    // (gone, open for writing, changed meanwhile, not a regular file,
    // archived already). Throws Error when the archive failed it.
    uint64_t archive(const std::string& path);
    // Bring an archived file back onto the members (writes do this first).
    // Returns false when it was not archived.
    bool recall(const std::string& path, const Caller& who);
    // Is the file at `path` archived? (one header read; false when unsure)
    bool archived(const std::string& path);
    // The header of the file at `path` on a healthy member (nullopt when
    // there is none, or it is not an nvrfs header).
    std::optional<FileHeader> header_at(const std::string& path);

    // Space (issue 11). Each member keeps kMetaReserve free for the audit log
    // and metadata: data writes and creates answer ENOSPC before they would
    // take it. When a write needs room, `on_full(bytes)` is asked first (the
    // recycler); it returns whether it freed anything.
    static constexpr uint64_t kMetaReserve = 8 << 20;
    // How long a write waits for recycling that keeps freeing space.
    static constexpr std::chrono::seconds kRecycleWait{20};
    // The largest file: its stored form must fit ext4's 16 TiB file limit.
    static constexpr uint64_t kMaxFileSize = (16ull << 40) / kStoredChunk * kChunkSize - kChunkSize;
    void set_on_full(std::function<bool(uint64_t)> f) { on_full_ = std::move(f); }
    // The format version new files are written in (chunk_layout.hpp); the
    // current one unless a test needs version 1 files to read and change.
    void set_new_file_version(uint16_t v) { new_file_version_ = v; }
    // Plaintext bytes written since start (the recycler measures the rate).
    uint64_t bytes_written() const { return written_.load(); }
    // What reads did since start (metrics): plaintext bytes returned, chunks
    // that authenticated, and stored copies of chunks that did not.
    struct ReadCounters {
        uint64_t bytes = 0, chunks_authenticated = 0, chunk_copies_failed = 0;
    };
    ReadCounters read_counters() const {
        return {read_bytes_.load(), chunks_ok_.load(), chunks_bad_.load()};
    }
    // A file's contents as the namespace ledger checks them (ledger.hpp):
    // its id, plaintext size and the hex tag that ends its last chunk.
    struct Facts {
        std::string id;
        uint64_t size = 0;
        std::string tail;
        // Into an audit record: what the ledger reads back ("id", "size", "tail").
        void record_in(nlohmann::json& r) const;
    };
    // Callers hold no place lock (a copy missing on some members only is
    // looked at again once the namespace changes in flight are done).
    std::optional<Facts> facts(const std::string& path);
    // Appends `event`'s record of the file at `path` stating its contents as
    // they are now (the daemon's "baseline"), ordered like every record that
    // states a file's contents (record_facts). False when the file is gone.
    bool record_contents(const std::string& event, const Caller& who, const std::string& path,
                         const std::function<void(nlohmann::json&)>& extra);
    // Every open() of a regular file asks whether the file found at `path`
    // is the one the audit log says stands there (the namespace ledger,
    // ledger.hpp); the answer is why not, or nullopt. `settled` is false
    // while another handle writes the file: its size and last tag are
    // moving and only its id can be held to. A file that is not in its
    // place is not opened: EIO and a TamperDetected alert. Set before use.
    using PlaceCheck = std::function<std::optional<std::string>(const std::string& path, const Facts& now, bool settled)>;
    void set_place_check(PlaceCheck f) { place_check_ = std::move(f); }
    // Is a file of this path open now (recycling leaves it alone), or, with
    // `for_writing`, open by a writer (the archive tier leaves it alone)?
    bool is_open(const std::string& path, bool for_writing = false);
    // Returns once every create, unlink, rename, truncate and write session
    // that was under way has written its audit record: a walk that met (or
    // missed) their files then finds them in the log (scrub's namespace
    // check).
    void settle_records();
    std::string stored_path(const std::string& path) { return stored(path); }

    // Rebuild support: copy one directory (its IV and attributes) or one file's
    // stored bytes to member `target`; the file is copied under its exclusive
    // lock and later writes through already open handles reach the target too.
    void copy_dir_to(const std::string& path, size_t target);
    uint64_t copy_file_to(const std::string& path, size_t target);
    // A rename while a member is being rebuilt can move a name from where the
    // walk has not been to where it has been: the target then lacks it, or
    // holds its stale copy. Every name a rename leaves while a member is
    // rebuilding is noted, for the rebuild to copy again (take_renamed).
    // Notes do not survive a restart, so the first one calls `on_first` (the
    // rebuild drops its checkpoint) and checkpoints are refused from then on
    // (unless_renamed runs `fn` only while none was noted). `fresh`: a walk
    // from nothing, which forgets older notes.
    void begin_rebuild_notes(bool fresh, std::function<void()> on_first);
    void end_rebuild_notes();  // the run is over, done or not: `on_first` is dropped, the notes kept
    std::vector<std::string> take_renamed();
    bool unless_renamed(const std::function<void()>& fn);
    // With no rename in flight and none left to copy, runs `fn` (the switch
    // to Active) and forgets the notes; false if one came in meanwhile.
    bool finish_rebuild(const std::function<void()>& fn);

    struct ScrubStats {
        uint64_t files = 0, chunks = 0, bad = 0, repaired = 0, unrepairable = 0, bytes = 0;
        uint64_t resynced = 0;  // authentic on every member but not byte-identical (crash mid-reseal)
        uint64_t skipped = 0;   // entries that could not be checked at all (listed, not readable)
        std::string first_skipped;
        // The namespace against the audit log (ledger.hpp): recordings the
        // log says exist and no member holds, and files whose contents are
        // not what the log recorded at that path (swapped, rewound).
        uint64_t missing = 0, mismatched = 0;
        // Archived files, and those whose archive object is gone or cut.
        uint64_t archived = 0, archive_missing = 0;
        ScrubStats& operator+=(const ScrubStats& o) {
            archived += o.archived, archive_missing += o.archive_missing;
            files += o.files, chunks += o.chunks, bad += o.bad, repaired += o.repaired;
            unrepairable += o.unrepairable, bytes += o.bytes, resynced += o.resynced, skipped += o.skipped;
            missing += o.missing, mismatched += o.mismatched;
            if (first_skipped.empty()) first_skipped = o.first_skipped;
            return *this;
        }
    };
    // Verify every chunk of `path` on every complete member; with `repair`,
    // rewrite bad copies from a good one. Adds to `stats`.
    void scrub_file(const std::string& path, bool repair, ScrubStats& stats);
    // Entries of directory `path` on any member that are no nvrfs name count
    // as bad; with `repair` they are moved to kQuarantineDir on that member.
    void scrub_dir(const std::string& path, bool repair, ScrubStats& stats);
    // A name with no stored byte on any member (a create that never completed).
    bool incomplete(const std::string& path);

private:
    std::string stored(const std::string& path);
    // Parts of scrub_file (volume_scrub.cpp).
    bool scrub_leftover(const std::string& path, bool repair, ScrubStats& stats);
    void scrub_copies(OpenFile& f, const std::vector<size_t>& members, bool repair, ScrubStats& st, std::vector<uint64_t>& bad);
    int copy_chunks(OpenFile& f, int fd, size_t target, const std::vector<size_t>& candidates, bool same_file, uint64_t& lost);
    void scrub_object(OpenFile& f, const std::string& path, bool repair, ScrubStats& stats);
    // Long names (names.hpp): the side file a member entry `rel` of `path`
    // needs, written before the entry and removed after it.
    struct SideFile {
        std::string rel;        // member path of the side file
        std::string encrypted;  // its contents: the whole encrypted name
    };
    std::optional<SideFile> side_of(const std::string& path, const std::string& rel);
    static int put_side(int root, const std::optional<SideFile>& side);
    static void drop_side(int root, const std::string& rel);
    // The plaintext name of member entry `n` in stored directory `dir_rel`
    // of one member, or nullopt when it is no authentic nvrfs name there.
    std::optional<std::string> entry_name(int root, const std::string& dir_rel, const DirIv& iv, const std::string& n);
    // Members that hold an open copy of `f`: the complete ones (to read), or
    // every writable one (to write).
    std::vector<size_t> holders(const OpenFile& f, bool writable) const;
    DirIv diriv(const std::string& plain_dir, const std::string& stored_dir);
    void forget_dirivs();
    // settle: the caller holds no place_mu_ (open_members).
    std::shared_ptr<OpenFile> open_stored(const std::string& path, const std::string& rel, int extra_flags, mode_t mode,
                                          const Caller* creator, Kind kind = Kind::File, bool settle = false);
    std::vector<std::pair<size_t, int>> open_members(OpenFile& f, const std::string& rel, int extra_flags, mode_t mode,
                                                     const std::optional<SideFile>& side,
                                                     std::array<struct stat, kMaxMembers>& found, bool settle);
    // open() of any kind (internal: scrub, rebuild, readlink).
    std::unique_ptr<Handle> open_any(const std::string& path, int flags, const Caller& who, bool settle = false);
    // Returns the new file's id (hex).
    std::string make_special(const std::string& path, Kind kind, mode_t perms, const std::string& content, const Caller& who);
    void chmod_special(const std::string& path, mode_t mode);
    // settle: the caller is the file's only holder, so members that disagree
    // are judged (by chunk 0) and repaired; else any header, for its id.
    FileHeader choose_header(OpenFile& f, const std::string& path, bool settle);
    // getattr of what is stored at `rel` (the member path of `path`).
    struct stat stat_stored(const std::string& path, const std::string& rel);
    // Every healthy member's copy at `rel` is the same empty file, its sealed
    // empty chunk authentic. False for anything else, left to an open to judge.
    bool authentic_empty(const std::string& rel);
    struct Listed {
        std::string rel;  // the directory's member path
        struct Entry {
            std::string name, stored;
        };
        std::vector<Entry> entries;
    };
    // `settle`: a difference between the members is looked at again once
    // the namespace changes in flight are done (place_mu_ exclusive), so it
    // must be false where place_mu_ is already held.
    Listed list_dir(const std::string& path, bool settle = true);
    // The header and the plain length as the members hold them now.
    void load_stored(OpenFile& f, const std::string& path, bool settle);
    void reconcile_lengths(OpenFile& f, const std::string& path);
    void check_empty(OpenFile& f, const std::string& path);
    // The first of `from` whose copy of chunk idx (of a file `size` long)
    // authenticates; its stored bytes in `sealed`, plaintext in `plain`.
    std::optional<size_t> find_authentic(OpenFile& f, uint64_t idx, uint64_t size, const std::vector<size_t>& from,
                                         uint8_t* sealed, uint8_t* plain);
    void load_chunks(OpenFile& f, const std::string& path, uint64_t c0, uint64_t c1, uint8_t* out);
    void chunk_plain(OpenFile& f, const std::string& path, uint64_t idx, uint8_t* out);
    void write_locked(OpenFile& f, const std::string& path, const uint8_t* data, uint64_t off, uint64_t len);
    void extend_locked(OpenFile& f, const std::string& path, uint64_t new_size);
    // Grow a file that ends on a chunk boundary with zero-form chunks (holes).
    void store_zero_chunks(OpenFile& f, const std::string& path, uint64_t new_size);
    void truncate_locked(OpenFile& f, const std::string& path, uint64_t size);
    // Open for internal use (rebuild, scrub); released when the last copy goes.
    // nullptr when the file no longer exists. settle: as open_stored's.
    std::shared_ptr<Handle> pin(const std::string& path, bool settle = false);
    // Seal chunks c0..c1 of a file `new_size` long from plain(i) and write them
    // to every writable member; `grows`: reserve the space first.
    void seal_and_store(OpenFile& f, const std::string& path, uint64_t c0, uint64_t c1, uint64_t new_size,
                        const std::vector<const uint8_t*>& plain, bool grows);
    void start_writeout(OpenFile& f, const std::vector<size_t>& members, uint64_t upto);
    void drop_written_out(OpenFile& f);
    void drop_read_behind(Handle& h, uint64_t begin, uint64_t end);
    void reserve(OpenFile& f, const std::vector<size_t>& members, uint64_t begin, uint64_t end,
                 std::array<std::atomic<int>, kMaxMembers>& err);
    void release_reserve(OpenFile& f);
    bool room_ahead(const std::vector<size_t>& members);
    uint64_t member_avail(size_t i);  // bytes free to nvrfsd on member i
    size_t open_writers();  // handles open for writing
    void allocate_holes(OpenFile& f, const std::vector<size_t>& members, uint64_t begin, uint64_t end);
    // Is there room for `bytes` more on every member in `members` (beyond the
    // reserve)? With `recycle`, the recycler is asked first and a "set is
    // full" alert raised (once until room returns) when it is not enough;
    // without, nothing is deleted and nothing alerted (a big `truncate -s`).
    bool make_room(uint64_t bytes, const std::vector<size_t>& members, bool recycle = true);
    void alerts_once_full();
    void on_copies(Handle& h, const char* what, const std::function<int(int)>& op);
    Facts facts_locked(const OpenFile& f) const;
    // Appends `event`'s record for the file `h` holds, named `name` or, by
    // default, as it is called now, stating its contents (Facts) as read
    // here. Callers hold no lock of that file (records_mu_ comes first).
    void record_facts(const std::string& event, const Caller& who, const Handle& h, const std::optional<std::string>& name,
                      int err, const std::function<void(nlohmann::json&, const Facts&)>& extra);
    // Archive parts (volume_archive.cpp).
    void load_archived(OpenFile& f, const std::string& path, uint64_t c0, uint64_t c1, uint8_t* out);
    // Chunks c0..c1 of `f`'s archive object, as the file was when `hdr` and
    // `size` were read (under f.mu, or what an upload took), into `sealed`,
    // each authenticated; plaintext to out + (c - c0) * kChunkSize with
    // `each`, else all into one chunk's room at `out`. The first that fails
    // (an object shorter than that file fails at c0), or nullopt.
    std::optional<uint64_t> fetch_archived(const OpenFile& f, const FileHeader& hdr, uint64_t size, uint64_t c0, uint64_t c1,
                                           uint8_t* sealed, uint8_t* out, bool each, bool fresh);
    // The object just uploaded of `f` as `hdr` at `size`: every chunk, and
    // the header. Not the file as it is now: a writer may have come in.
    void verify_object(const OpenFile& f, const std::string& path, const FileHeader& hdr, uint64_t size);
    void recall_locked(OpenFile& f, const std::string& path, const Caller& who);
    // Sets f.hdr.archived to `archived` and writes the header to every
    // writable member with the file's times kept; on failure f.hdr is as before.
    void set_archived(OpenFile& f, const std::string& path, bool archived, const std::vector<struct stat>& times);
    std::vector<struct stat> file_times(const OpenFile& f) const;
    bool unlinked(const OpenFile& f) const;
    bool upload_object(OpenFile& f, const std::string& path, const FileHeader& hdr, uint64_t size, uint64_t changes);
    void forget_archived(const std::optional<FileHeader>& h, const std::string& path, const std::string& why);
    // For open(): throws EIO (alerted once per file) when the file is not in
    // its place, ENOENT-like `Moved` when the path changed under the open.
    struct Moved {};
    void check_place(Handle& h);
    std::optional<std::string> place_verdict(const Handle& h);
    bool written_elsewhere(const Handle& h);
    // `except`: a member whose copy is not to be asked (one just restored).
    bool still_there(const Handle& h, std::optional<size_t> except = std::nullopt);
    bool restored_in_place(const Handle& h, size_t target);
    void track_open(const Handle& h);
    // The name an open file has now: a rename moves it, the handle keeps the
    // one it was opened by. What the ledger reads must name the file as it is.
    std::string name_now(const Handle& h);
    // A create, from before its first member file exists until its record
    // is written and its handle tracked. An internal open of the same path
    // (a scrub, the recycler, the archive mover; through FUSE the kernel
    // already keeps lookups out) waits for it in await_create(): it would
    // meet copies not yet written, or a file the audit log has not seen.
    class Creating {
    public:
        Creating(Volume& v, std::string path);
        ~Creating();
        Creating(const Creating&) = delete;
        Creating& operator=(const Creating&) = delete;

    private:
        Volume& v_;
        std::string path_;
    };
    void await_create(const std::string& path);
    void track_rename(const std::string& from, const std::string& to, bool exchange);
    // The stored path of `path`, or where an open, unlinked file was moved
    // when its directory was removed (orphan()).
    std::string located(const std::string& path);
    void orphan(const std::string& path);
    void audit(const std::string& event, const Caller& who, const std::string& path, int err,
               const std::function<void(nlohmann::json&)>& extra = {});
    // Throws Error(-r) when a fan-out returned an error.
    void check(int r, const std::string& what, const std::string& path);

    struct RootAttr {
        mode_t mode = 0755;
        uid_t uid = 0;
        gid_t gid = 0;
    };
    void set_root_attr(std::optional<mode_t> mode, std::optional<uid_t> uid, std::optional<gid_t> gid);
    static int write_root_attr(int member_root, const RootAttr& a);

    MirrorSet& set_;
    AuditLog& log_;
    Alerts& alerts_;
    NameCodec names_;
    OpenFileTable open_;
    std::mutex iv_mu_;
    std::unordered_map<std::string, DirIv> ivs_;
    std::function<bool(uint64_t)> on_full_;
    std::atomic<bool> full_alerted_{false};
    std::atomic<uint64_t> written_{0};
    std::atomic<uint64_t> read_bytes_{0}, chunks_ok_{0}, chunks_bad_{0};
    std::mutex opened_mu_;
    std::unordered_map<const Handle*, std::string> opened_;  // open handle -> its file's current path
    std::unordered_map<std::string, std::string> orphans_;   // hidden path -> member path under kOrphanDir
    std::unordered_multiset<std::string> creating_;           // paths a create is writing (Creating)
    std::condition_variable created_;                         // one of them is done
    // Held from reading a file's Facts until the record stating them is
    // appended (record_facts), so a file's records are in the order its
    // facts were read. Two closes of one file run at once (the kernel sends
    // a close after close(2) has returned, and the next writer may already
    // have written and closed): a close that read the file before the other
    // writer's data could append its record last, and the ledger held the
    // file to the older contents: TamperDetected and EIO at its next open.
    // Taken before a file's mu, never while holding one.
    std::mutex records_mu_;
    std::atomic<bool> record_delayed_{false};  // NVRFS_FIRST_RECORD_DELAY_MS used (t42)
    std::mutex renamed_mu_;                 // the rebuild's notes (begin_rebuild_notes)
    std::set<std::string> renamed_;
    bool renamed_seen_ = false;
    std::function<void()> on_first_renamed_;
    void note_renamed(const std::string& path);
    std::mutex root_mu_;
    RootAttr root_attr_;  // guarded by root_mu_
    PlaceCheck place_check_;
    ArchiveStore* archive_ = nullptr;
    uint16_t new_file_version_ = kFormatVersion;
    // Held shared from a change of what stands at a path (create, rename) or
    // of a file's recorded contents (truncate, a write session's close)
    // until its audit record is written; held exclusive by an open whose
    // place check failed, so that it looks again with every such record in.
    // Never taken while a file's mu is held, never twice by one thread.
    // (unlink is not in it: an open that lost a race with one sees the
    // file gone, still_there().)
    WriterFirstLock place_mu_;
    std::mutex place_alerted_mu_;
    std::unordered_set<std::string> place_alerted_;  // path + file id, alerted once
};

}  // namespace nvrfs
