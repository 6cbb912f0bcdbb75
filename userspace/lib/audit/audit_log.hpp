// audit_log.hpp — the tamper-evident record of every write (IoT-1001-3 5.2.7.2).
//
// Each record is a JSON object (seq, time, event, uid, user, pid, comm, path,
// bytes, result, ...) with `prev` = the previous record's MAC and `mac` =
// HMAC-SHA-256(audit key, the record without `mac`). Editing, deleting or
// reordering a record breaks the chain. Records are sealed with AES-256-GCM
// because they contain file names, and are stored mirrored on every member at
// .nvrfs/audit.log as frames: len(u32 BE) ‖ nonce ‖ ciphertext ‖ tag ‖ len.
// The trailing length lets the daemon find the chain's end without a scan.
#pragma once
#include "base/caller.hpp"
#include "base/io.hpp"
#include "store/keys.hpp"
#include "store/superblock.hpp"

#include <functional>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace nvrfs {

class MirrorSet;
inline constexpr const char* kAuditLogPath = ".nvrfs/audit.log";

// Builds the common fields of a record.
nlohmann::json audit_record(const std::string& event, const Caller& who, const std::string& path, int err);

// A place in the log: just past record `seq` (with MAC `mac`), which ends at
// byte `end`; the default is the log's start.
struct LogPosition {
    uint64_t end = 0, seq = 0;
    std::string mac;
};

struct VerifyResult {
    bool ok = true;
    uint64_t records = 0;
    uint64_t first_bad = 0;  // 1-based record position; 0 when ok
    std::string message;
};

class AuditLog {
public:
    // Opens (creates) the log on every healthy member and finds the chain's end.
    // A torn last frame (power cut mid-append) is cut off and reported in `notes`.
    AuditLog(MirrorSet& set, std::vector<std::string>* notes);
    AuditLog(const AuditLog&) = delete;
    AuditLog& operator=(const AuditLog&) = delete;

    // Adds seq, time (unless set), prev and mac, then appends to all healthy
    // members. Returns the record as written.
    nlohmann::json append(nlohmann::json rec);
    // What was appended before the call is durable when it returns (fdatasync
    // on every writable member), without holding up appends meanwhile.
    void sync();
    // Give a member that joins the set (rebuild target) a copy of the log and
    // append to it from now on.
    // `joined` runs while appends are blocked, to put the member in the write set.
    void attach(size_t member, const std::function<void()>& joined);
    uint64_t last_seq() const;
    // The last record, made durable first (fdatasync on every member), and the
    // byte offset just past it: what the host anchor records.
    struct Head {
        uint64_t seq = 0;
        std::string mac;
        uint64_t end = 0;
    };
    Head synced_head();
    // Every record of the log (one complete member's copy) from `from`
    // (whose record must be the one there: the caller checks with
    // record_ending_at), in order, with appends held up meanwhile; from
    // then on every record appended is handed to `each` too, in chain order,
    // with the offset it ends at (under the log's lock: `each` must not
    // append). One follower; set before the set is served.
    using Follower = std::function<void(const nlohmann::json&, uint64_t end)>;
    VerifyResult follow(Follower each, const LogPosition& from = {});
    // (seq, mac) of the record whose frame ends at byte `end`, or nullopt.
    std::optional<std::pair<uint64_t, std::string>> record_ending_at(uint64_t end) const;
    // Called (once, until a record is written again) when a record found no
    // member with room; it gets the record's event. Set before use.
    void set_on_lost(std::function<void(const std::string&)> f) { on_lost_ = std::move(f); }

private:
    struct End {
        bool known = false;
        uint64_t size = 0, allocated = 0;
    };
    int append_frame(size_t member, const Bytes& frame);  // mu_ held; 0 or -errno
    std::vector<UniqueFd> sync_fds() const;                // mu_ held: the writable members' logs, duplicated
    MirrorSet& set_;
    mutable std::mutex mu_;
    std::vector<UniqueFd> fds_;  // by member index
    std::vector<End> ends_;      // by member index
    bool lost_ = false;          // a record found no member with room (said once)
    std::function<void(const std::string&)> on_lost_;
    Follower follower_;  // guarded by mu_
    uint64_t seq_ = 0;
    std::string prev_mac_;
};


// Reads a log file, verifying every record, and hands each good record to
// `each` (may be empty) as it is read: never the whole log in memory.
VerifyResult read_audit_log(int fd, const KeySet& keys, const Uuid& set_uuid, const std::function<void(nlohmann::json&&)>& each);
// The same from a position (its record already verified), passing each
// record's end offset too.
VerifyResult read_audit_log(int fd, const KeySet& keys, const Uuid& set_uuid, const LogPosition& from,
                            const std::function<void(nlohmann::json&&, uint64_t end)>& each);

}  // namespace nvrfs
