#include "store/superblock.hpp"
#include "base/big_endian.hpp"

#include "base/error.hpp"
#include "base/io.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

namespace nvrfs {
namespace {
constexpr uint8_t kSuperblockMagic[8] = {'N', 'V', 'R', 'F', 'S', 'S', 'B', '1'};
// Version 2: the set may hold version 2 files (chunk_layout.hpp), which a
// version 1 build cannot read; it refuses the set instead. Version 1
// superblocks are read and rewritten as version 2.
constexpr uint32_t kVersion = 2, kVersion1 = 1;
constexpr size_t kReservedOff = 132, kMacOff = 192, kSumOff = 224;

SecretKey kek(const SecretKey& host_key, const Uuid& set) {
    return hkdf_sha256(host_key, ByteView(set.data(), set.size()), "nvrfs master key wrap v1");
}

std::array<uint8_t, kSuperblockSize> body(const Superblock& sb) {
    std::array<uint8_t, kSuperblockSize> b{};
    std::memcpy(b.data(), kSuperblockMagic, 8);
    put32(b.data() + 8, sb.version);
    put32(b.data() + 12, (sb.dirty ? 1u : 0u) | (sb.rebuilding ? 2u : 0u) | (sb.failed ? 4u : 0u));
    std::memcpy(b.data() + 16, sb.set_uuid.data(), 16);
    std::memcpy(b.data() + 32, sb.member_uuid.data(), 16);
    put64(b.data() + 48, sb.events);
    put64(b.data() + 56, sb.created);
    put32(b.data() + 64, 64 * 1024);
    put32(b.data() + 68, static_cast<uint32_t>(sb.role));
    std::memcpy(b.data() + 72, sb.wrap_nonce.data(), 12);
    std::memcpy(b.data() + 84, sb.wrapped_key.data(), 32);
    std::memcpy(b.data() + 116, sb.wrap_tag.data(), 16);
    return b;
}
}  // namespace

Uuid new_uuid() {
    Uuid u;
    random_bytes(u);
    u[6] = (u[6] & 0x0f) | 0x40;  // RFC 4122 version 4
    u[8] = (u[8] & 0x3f) | 0x80;
    return u;
}

std::string uuid_str(const Uuid& u) {
    const std::string h = hex(u);
    return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4), h.substr(16, 4), h.substr(20));
}

void Superblock::wrap_master(const SecretKey& master, const SecretKey& host_key) {
    random_bytes(wrap_nonce);
    gcm_seal(kek(host_key, set_uuid), wrap_nonce.data(), ByteView(set_uuid.data(), 16), master.bytes(),
             wrapped_key.data(), wrap_tag.data());
}

SecretKey Superblock::unwrap_master(const SecretKey& host_key, const std::string& where) const {
    std::array<uint8_t, 32> m{};
    if (!gcm_open(kek(host_key, set_uuid), wrap_nonce.data(), ByteView(set_uuid.data(), 16), wrapped_key, wrap_tag.data(), m.data()))
        throw Error(EKEYREJECTED, where,
                    fmt::format("member {} belongs to set {} that was created with a different host key; "
                                "it cannot be used on this machine",
                                where, uuid_str(set_uuid)));
    SecretKey k(m);
    std::fill(m.begin(), m.end(), 0);
    return k;
}

std::array<uint8_t, kSuperblockSize> Superblock::encode(const KeySet& keys) {
    version = kVersion;
    auto b = body(*this);
    mac = hmac_sha256(keys.sb_mac, ByteView(b.data(), kMacOff));
    std::memcpy(b.data() + kMacOff, mac.data(), 32);
    auto sum = sha256(ByteView(b.data(), kSumOff));
    std::memcpy(b.data() + kSumOff, sum.data(), 32);
    return b;
}

Superblock Superblock::decode(ByteView b, const std::string& where) {
    if (b.size() != kSuperblockSize || std::memcmp(b.data(), kSuperblockMagic, 8) != 0)
        throw Error(EINVAL, where, fmt::format("{} is not an nvrfs member (no valid superblock)", where));
    auto sum = sha256(b.first(kSumOff));
    if (!equal_ct(sum, b.subspan(kSumOff, 32)))
        throw Error(EINVAL, where, fmt::format("{}: superblock checksum mismatch (corrupt member)", where));
    const uint32_t version = get32(b.data() + 8);
    if (version != kVersion && version != kVersion1)
        throw Error(EINVAL, where, fmt::format("{}: superblock version {} is not supported", where, version));
    if (get32(b.data() + 64) != 64 * 1024)
        throw Error(EINVAL, where, fmt::format("{}: unsupported chunk size", where));
    // Bytes the MAC is computed over but no field holds must be zero, as
    // must flag bits no version defines: nothing unauthenticated rides along.
    if (get32(b.data() + 12) & ~7u)
        throw Error(EINVAL, where, fmt::format("{}: superblock has unknown flags {:#x} (corrupt or tampered)", where, get32(b.data() + 12)));
    for (size_t i = kReservedOff; i < kMacOff; ++i)
        if (b[i] != 0) throw Error(EINVAL, where, fmt::format("{}: superblock reserved byte {} is not zero (corrupt or tampered)", where, i));
    Superblock sb;
    sb.version = version;
    sb.dirty = get32(b.data() + 12) & 1;
    sb.rebuilding = get32(b.data() + 12) & 2;
    sb.failed = get32(b.data() + 12) & 4;
    std::memcpy(sb.set_uuid.data(), b.data() + 16, 16);
    std::memcpy(sb.member_uuid.data(), b.data() + 32, 16);
    sb.events = get64(b.data() + 48);
    sb.created = get64(b.data() + 56);
    const uint32_t role = get32(b.data() + 68);
    if (role > 1) throw Error(EINVAL, where, fmt::format("{}: unknown member role {}", where, role));
    sb.role = static_cast<MemberRole>(role);
    std::memcpy(sb.wrap_nonce.data(), b.data() + 72, 12);
    std::memcpy(sb.wrapped_key.data(), b.data() + 84, 32);
    std::memcpy(sb.wrap_tag.data(), b.data() + 116, 16);
    std::memcpy(sb.mac.data(), b.data() + kMacOff, 32);
    return sb;
}

bool Superblock::mac_ok(const KeySet& keys) const {
    auto b = body(*this);
    auto want = hmac_sha256(keys.sb_mac, ByteView(b.data(), kMacOff));
    return equal_ct(want, mac);
}

Superblock read_superblock(int dirfd, const std::string& member_path) {
    std::string raw;
    try {
        raw = read_file_at(dirfd, kSuperblockPath, kSuperblockSize);
    } catch (const Error& e) {
        if (e.code() == ENOENT)
            throw Error(ENOENT, member_path,
                        fmt::format("{} is not an nvrfs member (no {}); create the set with `nvrctl init`", member_path, kSuperblockPath));
        throw Error(e.code(), member_path, fmt::format("{}: cannot read superblock: {}", member_path, e.what()));
    }
    return Superblock::decode(as_bytes(raw), member_path);
}

void write_superblock(int dirfd, Superblock& sb, const KeySet& keys) {
    auto b = sb.encode(keys);
    ::mkdirat(dirfd, kMetaDir, 0700);
    write_file_atomic_at(dirfd, kSuperblockPath, b.data(), b.size(), 0600);
}

}  // namespace nvrfs
