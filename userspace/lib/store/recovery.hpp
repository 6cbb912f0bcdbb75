// recovery.hpp — a second way to a set's master key: the recovery passphrase.
//
// The host key opens the set on this machine only; a recorder whose system
// disk dies takes it along. With a recovery key the master key is also kept
// wrapped under a key derived from a passphrase the administrator stores
// away from the recorder: PBKDF2-HMAC-SHA-256 (at least 600 000 iterations,
// SP 800-132) and AES-256-GCM with the set's UUID as associated data, in
// <member>/.nvrfs/recovery on every member and spare (the same record on
// each: any one member is enough). `nvrctl key recover` opens the set with
// it and binds it to a new host key.
//
//   "NVRFSREC" | u32 version (1) | u32 iterations | salt (16) | nonce (12)
//   | wrapped master (32) | tag (16)                                  96 bytes
#pragma once
#include "base/crypto.hpp"
#include "store/superblock.hpp"

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nvrfs {

inline constexpr const char* kRecoveryPath = ".nvrfs/recovery";
constexpr uint32_t kRecoveryMinIterations = 600000;
// A recovery record is hostile input like any member file: an absurd count
// would burn the CPU for hours before saying "wrong passphrase".
constexpr uint32_t kRecoveryMaxIterations = 10000000;
constexpr size_t kRecoverySize = 96;

struct RecoveryWrap {
    uint32_t iterations = kRecoveryMinIterations;
    std::array<uint8_t, 16> salt{};
    std::array<uint8_t, kGcmNonce> nonce{};
    std::array<uint8_t, 32> wrapped{};
    std::array<uint8_t, kGcmTag> tag{};

    static RecoveryWrap make(const SecretKey& master, std::string_view passphrase, const Uuid& set, uint32_t iterations);
    // Throws Error(EKEYREJECTED) when the passphrase (or the record) is wrong.
    SecretKey unwrap(std::string_view passphrase, const Uuid& set, const std::string& where) const;
    std::array<uint8_t, kRecoverySize> encode() const;
    // Throws Error(EINVAL) naming `where` when it is not a recovery record.
    static RecoveryWrap decode(ByteView b, const std::string& where);
};

// <member>/.nvrfs/recovery: nullopt when there is none.
std::optional<RecoveryWrap> read_recovery(int member_dirfd, const std::string& member_path);
void write_recovery(int member_dirfd, const RecoveryWrap& w);
// True when there was one.
bool remove_recovery(int member_dirfd);

// The set's master key through the recovery passphrase, from the first of
// `members` that holds a recovery record, proved by that member's superblock
// MAC. Throws Error: ENOENT when no member holds one, EKEYREJECTED for a
// wrong passphrase.
SecretKey master_by_recovery(const std::vector<std::string>& members, std::string_view passphrase);

}  // namespace nvrfs
