// keys.hpp — the host key and the keys derived from a set's master key.
//
// The host key (default /etc/nvrfs/host.key, 32 random bytes, mode 0600) never
// lives on a member. Each member's superblock carries the set's master key
// wrapped under HKDF(host key); without this host's key a member is noise.
#pragma once
#include "base/crypto.hpp"

#include <string>

namespace nvrfs {

constexpr size_t kHostKeyLen = 32;
inline constexpr const char* kDefaultHostKey = "/etc/nvrfs/host.key";

// Throws Error with a message that says what to do (e.g. run `nvrctl init`).
// A path ending in ".tpm" is the host key sealed in the TPM (tpm_seal.hpp),
// unsealed through `tcti`.
SecretKey load_host_key(const std::string& path, const std::string& tcti = "device:/dev/tpmrm0");
inline bool is_sealed_key(const std::string& path) { return path.size() > 4 && path.compare(path.size() - 4, 4, ".tpm") == 0; }
// Where `nvrctl key rotate` keeps the next host key until every superblock
// is wrapped under it ("host.key.next", "host.key.next.tpm"). While it
// exists a rotation was interrupted: the set is not opened until it is run
// again and finishes.
inline std::string pending_key_path(const std::string& path) {
    return is_sealed_key(path) ? path.substr(0, path.size() - 4) + ".next.tpm" : path + ".next";
}
// Creates a new host key (refuses to overwrite one).
SecretKey create_host_key(const std::string& path);

struct KeySet {
    SecretKey content;    // per-file keys are derived from it
    SecretKey names;      // 64 bytes, AES-256-SIV
    SecretKey audit_enc;  // audit records are encrypted: they hold file names
    SecretKey audit_mac;  // the HMAC chain over audit records
    SecretKey sb_mac;     // superblock authentication
    SecretKey anchor;     // the host's record of the set (host_anchor.hpp)
    SecretKey export_sign;  // Ed25519 seed of evidence packages (evidence.hpp)

    static KeySet derive(const SecretKey& master);
};

}  // namespace nvrfs
