// names.hpp — encrypted file names.
//
// A stored name is base64url(AES-256-SIV(names key, AD = directory IV, name)).
// Every stored directory holds a random 16-byte IV in `.nvrfs.diriv` (the same
// bytes on every member), so equal names in different directories look
// different on disk, and renaming a directory re-encrypts nothing below it.
// SIV is deterministic, which lookup needs, and misuse-resistant.
#pragma once
#include "crypto.hpp"

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace nvrfs {

using DirIv = std::array<uint8_t, 16>;
inline constexpr const char* kDirIvName = ".nvrfs.diriv";
// 255-byte stored names hold base64url(16-byte tag + name): 175 plaintext bytes.
constexpr size_t kMaxNameLen = 175;

class NameCodec {
public:
    explicit NameCodec(const SecretKey& names_key) : key_(names_key) {}
    // Throws Error(ENAMETOOLONG) for names that would not fit on a member.
    std::string encrypt(const DirIv& iv, std::string_view name) const;
    // nullopt for anything nvrfs did not write (internal files, tampering).
    std::optional<std::string> decrypt(const DirIv& iv, std::string_view stored) const;

private:
    SecretKey key_;
};

}  // namespace nvrfs
