// archive_forge.hpp — writes backup archives by the documented format
// (docs/backup-format.md) with whatever entries a test or the fuzzer puts in
// them: what an attacker who knows the passphrase could hand to a restore.
// Used by the unit tests and tests/fuzz; never by nvrfs itself.
#pragma once
#include "transfer/backup_archive.hpp"
#include "base/crypto.hpp"

#include <array>
#include <cstring>
#include <string>
#include <string_view>

namespace nvrfs::test {

// One entry of the plaintext stream: type ('F' file, 'M' manifest), the
// length-prefixed JSON, then a file's bytes.
inline std::string archive_entry(char type, std::string_view json, std::string_view data = {}) {
    std::string s(1, type);
    for (int i = 3; i >= 0; --i) s += static_cast<char>((json.size() >> (8 * i)) & 0xff);
    s.append(json);
    s.append(data);
    return s;
}

class ArchiveForge {
public:
    // `fixed_salt`: the same salt and id every time, so one forge derives its
    // PBKDF2 key once and seals many archives (the fuzzer).
    ArchiveForge(std::string_view passphrase, uint32_t iterations, bool fixed_salt) {
        std::memcpy(h_, "NVRBAK01", 8);
        for (int i = 0; i < 4; ++i) h_[8 + i] = static_cast<uint8_t>(iterations >> (24 - 8 * i));
        if (fixed_salt) std::memset(h_ + 12, 7, 32);
        else random_bytes({h_ + 12, 32});  // salt and archive id
        h_[45] = 0x10;                      // 1 MiB records
        const SecretKey kek = pbkdf2_sha256(passphrase, ByteView(h_ + 12, 16), iterations);
        const auto tag = hmac_sha256(hkdf_sha256(kek, {}, "nvrfs backup header v1"), ByteView(h_, 48));
        std::memcpy(h_ + 48, tag.data(), 16);
        data_ = hkdf_sha256(kek, {}, "nvrfs backup data v1");
    }
    // The whole stream as one final record.
    std::string seal(std::string_view stream) const {
        std::string out(reinterpret_cast<const char*>(h_), sizeof h_);
        std::array<uint8_t, 25> ad{};
        std::memcpy(ad.data(), h_ + 28, 16);
        ad[24] = 1;
        Bytes rec(4 + kGcmNonce + stream.size() + kGcmTag);
        const uint32_t len = static_cast<uint32_t>(rec.size() - 4);
        for (int i = 0; i < 4; ++i) rec[i] = static_cast<uint8_t>(len >> (24 - 8 * i));
        random_bytes({rec.data() + 4, kGcmNonce});
        gcm_seal(data_, rec.data() + 4, ad, as_bytes(stream), rec.data() + 4 + kGcmNonce, rec.data() + 4 + kGcmNonce + stream.size());
        out.append(reinterpret_cast<const char*>(rec.data()), rec.size());
        return out;
    }

private:
    uint8_t h_[64] = {};
    SecretKey data_;
};

}  // namespace nvrfs::test
