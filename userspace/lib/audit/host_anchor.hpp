// host_anchor.hpp — what must not go backwards, kept outside the disks.
//
// An attacker who holds the member disks can put back an older copy of all of
// them, or cut records off the end of every copy of the audit log: the disks
// cannot vouch for themselves. The host keeps its own record of the set in
// `<state_dir>/<set uuid>.anchor` (root-only, on the system disk): the highest
// event counter and the audit log's head (sequence number, MAC and end offset
// of the last record known to be on the disks), authenticated with a key
// derived from the set's master key. At mount, members older than that record
// are a rollback and the mount is refused until an administrator accepts it
// (`nvrctl set accept-rollback`, audited at the next mount).
//
// The window: the record is rewritten at mount, at unmount and every
// check_interval while mounted (after the audit log is synced), so what
// happened within the last check_interval before a crash is not covered.
#pragma once
#include "base/crypto.hpp"
#include "base/error.hpp"
#include "store/superblock.hpp"

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace nvrfs {

// The members are older than the host's record, or the record itself is
// damaged: a decision for an administrator, not something a restart fixes.
class AnchorRefusal : public Error {
public:
    using Error::Error;
};

struct AnchorState {
    uint64_t events = 0;     // the set's event counter
    uint64_t audit_seq = 0;  // the last audit record known to be on the disks (0: none)
    std::string audit_mac;   // its "mac" field
    uint64_t audit_end = 0;  // byte offset just past it in audit.log
    std::string time;        // when this was written (RFC 3339)
    // The TPM NV counter this record goes with (0: none; the host key is a
    // file): a record older than the TPM's counter was put back.
    uint64_t tpm_counter = 0;
    bool operator==(const AnchorState&) const = default;
};

class HostAnchor {
public:
    HostAnchor(std::string state_dir, const Uuid& set, const SecretKey& key);

    // nullopt: this host has no record of the set yet. Throws
    // AnchorRefusal(EBADMSG) naming the file when it is malformed or fails its MAC.
    std::optional<AnchorState> load() const;
    // Atomic and durable (written aside, fsync'd, renamed, directory fsync'd).
    void store(AnchorState s) const;
    const std::string& path() const { return path_; }

    // The namespace ledger as of an audit record (ledger.hpp), so that a
    // mount replays only the records after it: `<uuid>.ledger`, under the
    // same MAC. load_checkpoint: nullopt when there is none, or when it is
    // damaged (then `why` says so and the whole log is replayed).
    void store_checkpoint(nlohmann::json body) const;
    std::optional<nlohmann::json> load_checkpoint(std::string* why) const;

    // An administrator's acceptance of the members as they are, taken at the
    // next mount: who asked, and when.
    void request_acceptance(const std::string& who) const;
    std::optional<std::string> acceptance() const;
    void clear_acceptance() const;

private:
    void write_signed(const std::string& name, nlohmann::json body) const;
    std::optional<nlohmann::json> read_signed(const std::string& name, size_t max_len, std::string& why) const;
    std::string dir_, name_, accept_name_, ledger_name_, path_;
    SecretKey key_;
};

// What a mount finds when it compares the members with the host's record.
struct AnchorCheck {
    bool rollback = false;  // something went backwards
    std::string reason;     // one line, for the error and the alert
};
// `events`: the members' highest event counter; `log_seq`: where the audit
// log ends; `record_at(end)` returns the (seq, mac) of the record that ends
// at byte `end` of the log, or nullopt.
AnchorCheck compare_with_anchor(const AnchorState& a, uint64_t events, uint64_t log_seq,
                                const std::function<std::optional<std::pair<uint64_t, std::string>>(uint64_t)>& record_at);
// The audit log alone (nvrctl log verify, reading one member's copy):
// `anchored_mac` is the MAC of the log's record #a.audit_seq, if it has one.
AnchorCheck compare_log_with_anchor(const AnchorState& a, uint64_t log_seq, const std::optional<std::string>& anchored_mac);

}  // namespace nvrfs
