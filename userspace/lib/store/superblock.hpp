// superblock.hpp — the 256-byte record that makes a directory an nvrfs member.
//
// Stored at <member>/.nvrfs/superblock, replaced atomically. It names the set
// and the member, carries an mdadm-style event counter (the member with the
// highest count is current; lower ones are stale and resynced, never trusted),
// and the set's master key wrapped under the host key. A SHA-256 checksum
// catches corruption without any key; an HMAC under a key derived from the
// master key stops anyone without the host key from forging event counts.
#pragma once
#include "base/crypto.hpp"
#include "store/keys.hpp"

#include <array>
#include <cstdint>
#include <string>

namespace nvrfs {

using Uuid = std::array<uint8_t, 16>;
Uuid new_uuid();
std::string uuid_str(const Uuid& u);

constexpr size_t kSuperblockSize = 256;
inline constexpr const char* kMetaDir = ".nvrfs";
inline constexpr const char* kSuperblockPath = ".nvrfs/superblock";
// Mode and owner the mount's root shows ("<octal mode> <uid> <gid>\n"): the
// member root itself stays root-owned 0700.
inline constexpr const char* kRootAttrPath = ".nvrfs/root";
// Where scrub --repair moves entries that are no nvrfs name (kept as evidence).
inline constexpr const char* kQuarantineDir = ".nvrfs/quarantine";
// Files unlinked while open whose directory was then removed, until they close.
inline constexpr const char* kOrphanDir = ".nvrfs/orphans";

enum class MemberRole : uint32_t { Data = 0, Spare = 1 };

struct Superblock {
    uint32_t version = 2;  // as read; encode() writes the current one
    Uuid set_uuid{};
    Uuid member_uuid{};
    uint64_t events = 0;
    uint64_t created = 0;  // unix seconds
    bool dirty = false;    // mounted and not cleanly unmounted
    bool rebuilding = false;  // receiving a rebuild; not a complete copy yet
    // Taken out by the administrator (nvrctl member fail): stays out at
    // every mount until nvrctl member add takes it back. Written only to
    // the member itself, so a disk failed for good never needs to be read.
    bool failed = false;
    MemberRole role = MemberRole::Data;
    std::array<uint8_t, kGcmNonce> wrap_nonce{};
    std::array<uint8_t, 32> wrapped_key{};
    std::array<uint8_t, kGcmTag> wrap_tag{};
    std::array<uint8_t, 32> mac{};

    // Wrap `master` for this set under `host_key`.
    void wrap_master(const SecretKey& master, const SecretKey& host_key);
    // Throws Error(EKEYREJECTED) naming the member when the host key is not this set's.
    SecretKey unwrap_master(const SecretKey& host_key, const std::string& where) const;

    std::array<uint8_t, kSuperblockSize> encode(const KeySet& keys);  // also refreshes `mac`
    // Throws Error(EINVAL) with a clear message: not a member, or corrupt.
    static Superblock decode(ByteView b, const std::string& where);
    bool mac_ok(const KeySet& keys) const;
};

// Read and write <dirfd>/.nvrfs/superblock.
Superblock read_superblock(int member_dirfd, const std::string& member_path);
void write_superblock(int member_dirfd, Superblock& sb, const KeySet& keys);

}  // namespace nvrfs
