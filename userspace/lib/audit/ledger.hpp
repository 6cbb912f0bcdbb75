// ledger.hpp — what the namespace should hold, replayed from the audit log.
//
// Every create, write session, truncate, rename and unlink is an audit record
// (MAC-chained, its head anchored outside the disks: host_anchor.hpp), and
// each record of a file names the file's id and, at every close, its size
// and the tag that ends its last chunk. Replayed, the log says which file
// must be at which path with which contents. Scrub compares that with the
// members: a recording deleted on every member, two recordings' contents or
// two directories swapped, or a recording put back as an older copy of
// itself, all authenticate chunk by chunk but not against the ledger.
//
// Records from before the ledger (no "id") make a path known without
// binding its contents; such files are checked for existence only until
// `nvrctl upgrade` records a "baseline" of them (id, size, tail as found).
#pragma once
#include "audit/audit_log.hpp"

#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace nvrfs {

struct LedgerEntry {
    std::string id;        // hex file id; "" when the log never said
    bool closed = false;   // size and tail are those of a completed write session or truncate
    uint64_t size = 0;
    std::string tail;      // hex tag ending the last chunk
    uint64_t seq = 0;      // the record that last set this entry
};

class Ledger {
public:
    // One audit record, in log order. Failed operations change nothing.
    void apply(const nlohmann::json& rec);
    const std::map<std::string, LedgerEntry>& files() const { return files_; }
    uint64_t last_seq() const { return last_seq_; }
    // For the host's checkpoint of the ledger: {"last_seq", "files": {path:
    // [id, closed, size, tail, seq]}}. from_json: nullopt when malformed.
    nlohmann::json to_json() const;
    static std::optional<Ledger> from_json(const nlohmann::json& j);

private:
    void move(const std::string& from, const std::string& to, bool exchange);
    std::map<std::string, LedgerEntry> take(const std::string& a);
    std::map<std::string, LedgerEntry> files_;
    uint64_t last_seq_ = 0;
};

// How a file on the members compares with its entry.
enum class LedgerVerdict { Match, Swapped, Rewound, Unchecked };
// `grew_ok`: the set was not cleanly unmounted, so a file longer than its
// last recorded close may hold appends whose record was lost in the crash.
LedgerVerdict compare(const LedgerEntry& e, const std::string& id, uint64_t size, const std::string& tail, bool grew_ok);

// The ledger of a mounted set, kept current as records are appended
// (AuditLog::follow) so that open() can hold a file to its place.
class LiveLedger {
public:
    // `end`: the byte offset the record ends at in the log.
    void apply(const nlohmann::json& rec, uint64_t end);
    // Start from a checkpoint: the ledger as of the record at `at`.
    void reset(Ledger l, const LogPosition& at) {
        std::lock_guard lk(mu_);
        ledger_ = std::move(l);
        mark_ = at;
    }
    std::optional<LedgerEntry> find(const std::string& path) const {
        std::lock_guard lk(mu_);
        const auto it = ledger_.files().find(path);
        if (it == ledger_.files().end()) return std::nullopt;
        return it->second;
    }
    // A copy, for a walk that must not hold up appends (scrub).
    Ledger snapshot() const {
        std::lock_guard lk(mu_);
        return ledger_;
    }
    // The ledger and the record it is as of (for a checkpoint). A copy: its
    // JSON is built outside the lock that every audit append takes.
    std::pair<Ledger, LogPosition> checkpoint() const {
        std::lock_guard lk(mu_);
        return {ledger_, mark_};
    }
    uint64_t seq() const {
        std::lock_guard lk(mu_);
        return mark_.seq;
    }

private:
    mutable std::mutex mu_;
    Ledger ledger_;
    LogPosition mark_;
};

}  // namespace nvrfs
