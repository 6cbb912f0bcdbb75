// names.hpp — encrypted file names.
//
// A stored name is base64url(AES-256-SIV(names key, AD = directory IV, name)).
// Every stored directory holds a random 16-byte IV in `.nvrfs.diriv` (the same
// bytes on every member), so equal names in different directories look
// different on disk, and renaming a directory re-encrypts nothing below it.
// SIV is deterministic, which lookup needs, and misuse-resistant.
#pragma once
#include "base/crypto.hpp"

#include <array>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace nvrfs {

using DirIv = std::array<uint8_t, 16>;
inline constexpr const char* kDirIvName = ".nvrfs.diriv";
// Names of up to 255 bytes, as on ext4.
constexpr size_t kMaxNameLen = 255;
// A member name holds 255 bytes: base64url(16-byte tag + name) fits for
// names up to 175 bytes. A longer one is stored as kLongPrefix + base64url(
// SHA-256 of its encrypted name), with the encrypted name itself in a side
// file of that name + kLongSuffix (as gocryptfs does). The side file is
// authenticated twice: its hash must be the entry's and it must decrypt.
constexpr size_t kMaxMemberName = 255;
inline constexpr std::string_view kLongPrefix = "nvrfs.long.";
inline constexpr std::string_view kLongSuffix = ".name";

// The member name of an encrypted name.
std::string member_name(const std::string& encrypted);
// Is this member name the long form (an entry), or a long form's side file?
bool is_long_name(std::string_view member);
bool is_long_side(std::string_view member);

class NameCodec {
public:
    explicit NameCodec(const SecretKey& names_key) : key_(names_key) {}
    // The encrypted name (member_name() makes it fit a member); throws
    // Error(ENAMETOOLONG) for names longer than kMaxNameLen.
    std::string encrypt(const DirIv& iv, std::string_view name) const;
    // nullopt for anything nvrfs did not write (internal files, tampering).
    std::optional<std::string> decrypt(const DirIv& iv, std::string_view stored) const;

private:
    SecretKey key_;
    // SIV is deterministic, so a name encrypted once under a directory IV is
    // that name for good: every request resolves its whole path, and a
    // create's lookup, create and unlink each encrypt the same names again.
    // Bounded; dropped whole when full.
    static constexpr size_t kCacheEntries = 4096;
    mutable std::mutex cache_mu_;
    mutable std::unordered_map<std::string, std::string> cache_;
};

}  // namespace nvrfs
