// crypto.hpp — the only place nvrfs touches OpenSSL.
//
// Promises: AES-256-GCM sealing with 96-bit random nonces, AES-256-SIV for
// deterministic name encryption, HKDF-SHA-256 sub-keys with purpose labels,
// HMAC-SHA-256 and SHA-256. All are FIPS 140-2 Annex A approved algorithms
// (SIV is built from approved AES-CMAC/CTR). Cipher contexts are per thread, so
// callers need no locks. Secret key bytes are wiped when a SecretKey dies.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nvrfs {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView as_bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Key bytes live in OpenSSL's secure heap when it is set up (locked in
// memory, left out of core dumps: protect_key_memory()), else on the normal
// heap; either way they are wiped when freed.
template <class T>
struct SecureAllocator {
    using value_type = T;
    SecureAllocator() = default;
    template <class U>
    SecureAllocator(const SecureAllocator<U>&) noexcept {}
    T* allocate(size_t n);
    void deallocate(T* p, size_t n) noexcept;
    bool operator==(const SecureAllocator&) const noexcept { return true; }
};
using SecureBytes = std::vector<uint8_t, SecureAllocator<uint8_t>>;
// Call once at program start, before any key is made: marks the process
// non-dumpable (no core dump, no ptrace by other accounts) and sets up the
// secure heap. False when the heap could not be set up (keys then use the
// normal heap, the process stays non-dumpable).
bool protect_key_memory();

class SecretKey {
public:
    SecretKey() = default;
    explicit SecretKey(ByteView b) : k_(b.begin(), b.end()) {}
    SecretKey(const SecretKey& o) : k_(o.k_) {}
    SecretKey(SecretKey&& o) noexcept : k_(std::move(o.k_)) {}
    SecretKey& operator=(SecretKey o) noexcept {
        wipe();
        k_.swap(o.k_);
        return *this;
    }
    ~SecretKey() { wipe(); }

    static SecretKey random(size_t len);
    ByteView bytes() const { return {k_.data(), k_.size()}; }
    size_t size() const { return k_.size(); }
    bool empty() const { return k_.empty(); }

private:
    void wipe() noexcept;
    SecureBytes k_;
};

constexpr size_t kGcmNonce = 12;
constexpr size_t kGcmTag = 16;
constexpr size_t kSivTag = 16;

void random_bytes(std::span<uint8_t> out);

// HKDF-SHA-256 (RFC 5869). `info` names the purpose so no two uses share a key.
SecretKey hkdf_sha256(const SecretKey& ikm, ByteView salt, std::string_view info, size_t len = 32);

// AES-256-GCM. `out` receives in.size() bytes; the tag is written to `tag`.
void gcm_seal(const SecretKey& key, const uint8_t* nonce, ByteView aad, ByteView in, uint8_t* out, uint8_t* tag);
// Returns false when the tag does not verify; `out` is then garbage.
bool gcm_open(const SecretKey& key, const uint8_t* nonce, ByteView aad, ByteView in, const uint8_t* tag, uint8_t* out);

// AES-256-SIV (RFC 5297) with a 64-byte key: output is tag ‖ ciphertext.
Bytes siv_seal(const SecretKey& key, ByteView aad, ByteView in);
std::optional<Bytes> siv_open(const SecretKey& key, ByteView aad, ByteView in);

// PBKDF2-HMAC-SHA-256 (SP 800-132) of a passphrase; for backup keys.
SecretKey pbkdf2_sha256(std::string_view passphrase, ByteView salt, uint32_t iterations, size_t len = 32);

// Incremental SHA-256 for streams (backup manifests).
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(ByteView data);
    std::array<uint8_t, 32> final();

private:
    void* ctx_;
};

// SHA-256 (hex) of everything readable from `fd`; its length into `size`.
// Throws Error naming `what` when a read fails.
std::string sha256_fd(int fd, const std::string& what, uint64_t* size = nullptr);

// Ed25519 from a 32-byte seed (evidence packages, evidence.hpp).
class Ed25519Key {
public:
    explicit Ed25519Key(const SecretKey& seed);
    ~Ed25519Key();
    Ed25519Key(const Ed25519Key&) = delete;
    Ed25519Key& operator=(const Ed25519Key&) = delete;
    std::string public_pem() const;
    // SHA-256 of the DER public key, as `openssl pkey -pubin -outform DER | sha256sum` prints it.
    std::string fingerprint() const;
    Bytes sign(std::string_view msg) const;

private:
    void* key_;  // EVP_PKEY
};

// Does `sig` verify `msg` under the PEM public key (Ed25519 keys only)?
bool ed25519_verify(const std::string& public_pem, std::string_view msg, std::string_view sig);
std::string pem_fingerprint(const std::string& public_pem);  // "" when not an Ed25519 public key

std::array<uint8_t, 32> hmac_sha256(const SecretKey& key, ByteView data);
std::array<uint8_t, 32> sha256(ByteView data);

// Constant-time comparison for MACs.
bool equal_ct(ByteView a, ByteView b);

std::string hex(ByteView b);
std::optional<Bytes> unhex(std::string_view s);
std::string base64url(ByteView b);
std::optional<Bytes> unbase64url(std::string_view s);

}  // namespace nvrfs
