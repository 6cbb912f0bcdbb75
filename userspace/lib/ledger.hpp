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
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
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

private:
    void move(const std::string& from, const std::string& to, bool exchange);
    std::map<std::string, LedgerEntry> files_;
    uint64_t last_seq_ = 0;
};

// How a file on the members compares with its entry.
enum class LedgerVerdict { Match, Swapped, Rewound, Unchecked };
// `grew_ok`: the set was not cleanly unmounted, so a file longer than its
// last recorded close may hold appends whose record was lost in the crash.
LedgerVerdict compare(const LedgerEntry& e, const std::string& id, uint64_t size, const std::string& tail, bool grew_ok);

}  // namespace nvrfs
