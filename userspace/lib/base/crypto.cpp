#include "base/crypto.hpp"

#include "base/error.hpp"

#include <cerrno>
#include <cstring>
#include <memory>
#include <sys/prctl.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

namespace nvrfs {
namespace {

[[noreturn]] void crypto_fail(const char* what) {
    throw Error(EIO, "", std::string("OpenSSL failure: ") + what);
}

struct CtxFree {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

// Fetched once; the algorithm objects are immutable and shared by all threads.
const EVP_CIPHER* gcm_cipher() {
    static const EVP_CIPHER* const c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (!c) crypto_fail("AES-256-GCM unavailable");
    return c;
}
const EVP_CIPHER* siv_cipher() {
    static const EVP_CIPHER* const c = EVP_CIPHER_fetch(nullptr, "AES-256-SIV", nullptr);
    if (!c) crypto_fail("AES-256-SIV unavailable");
    return c;
}

// One context per thread and use: re-initialised on every call, never shared.
EVP_CIPHER_CTX* thread_ctx(int slot) {
    thread_local CipherCtx ctx[2] = {CipherCtx(EVP_CIPHER_CTX_new()), CipherCtx(EVP_CIPHER_CTX_new())};
    if (!ctx[slot]) crypto_fail("EVP_CIPHER_CTX_new");
    return ctx[slot].get();
}

int ilen(size_t n) {
    if (n > static_cast<size_t>(INT32_MAX)) crypto_fail("buffer too large");
    return static_cast<int>(n);
}

}  // namespace

template <>
uint8_t* SecureAllocator<uint8_t>::allocate(size_t n) {
    // Full secure heap: fall back to the normal one rather than fail.
    void* p = CRYPTO_secure_malloc_initialized() ? OPENSSL_secure_malloc(n) : nullptr;
    if (!p) p = OPENSSL_malloc(n);
    if (!p) throw std::bad_alloc();
    return static_cast<uint8_t*>(p);
}

template <>
void SecureAllocator<uint8_t>::deallocate(uint8_t* p, size_t n) noexcept {
    // Wipes and frees either kind of allocation.
    OPENSSL_secure_clear_free(p, n);
}

bool protect_key_memory() {
    ::prctl(PR_SET_DUMPABLE, 0);
    // 1 MiB holds the set's keys and a per-file key for tens of thousands of open files.
    return CRYPTO_secure_malloc_init(1 << 20, 32) > 0;
}

SecretKey SecretKey::random(size_t len) {
    Bytes b(len);
    random_bytes(b);
    SecretKey k(b);
    OPENSSL_cleanse(b.data(), b.size());
    return k;
}

void SecretKey::wipe() noexcept {
    if (!k_.empty()) OPENSSL_cleanse(k_.data(), k_.size());
    k_.clear();
}

void random_bytes(std::span<uint8_t> out) {
    if (RAND_bytes(out.data(), ilen(out.size())) != 1) crypto_fail("RAND_bytes");
}

SecretKey hkdf_sha256(const SecretKey& ikm, ByteView salt, std::string_view info, size_t len) {
    static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    if (!kdf) crypto_fail("HKDF unavailable");
    std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> kctx(EVP_KDF_CTX_new(kdf), EVP_KDF_CTX_free);
    if (!kctx) crypto_fail("EVP_KDF_CTX_new");
    OSSL_PARAM params[5];
    int i = 0;
    params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0);
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.bytes().data()), ikm.size());
    if (!salt.empty())
        params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size());
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size());
    params[i] = OSSL_PARAM_construct_end();
    Bytes out(len);
    if (EVP_KDF_derive(kctx.get(), out.data(), out.size(), params) != 1) crypto_fail("HKDF derive");
    SecretKey k(out);
    OPENSSL_cleanse(out.data(), out.size());
    return k;
}

void gcm_seal(const SecretKey& key, const uint8_t* nonce, ByteView aad, ByteView in, uint8_t* out, uint8_t* tag) {
    EVP_CIPHER_CTX* c = thread_ctx(0);
    int n = 0;
    if (EVP_EncryptInit_ex2(c, gcm_cipher(), key.bytes().data(), nonce, nullptr) != 1) crypto_fail("GCM init");
    if (!aad.empty() && EVP_EncryptUpdate(c, nullptr, &n, aad.data(), ilen(aad.size())) != 1) crypto_fail("GCM aad");
    if (!in.empty() && EVP_EncryptUpdate(c, out, &n, in.data(), ilen(in.size())) != 1) crypto_fail("GCM update");
    if (EVP_EncryptFinal_ex(c, out + in.size(), &n) != 1) crypto_fail("GCM final");
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, kGcmTag, tag) != 1) crypto_fail("GCM tag");
}

bool gcm_open(const SecretKey& key, const uint8_t* nonce, ByteView aad, ByteView in, const uint8_t* tag, uint8_t* out) {
    EVP_CIPHER_CTX* c = thread_ctx(0);
    int n = 0;
    if (EVP_DecryptInit_ex2(c, gcm_cipher(), key.bytes().data(), nonce, nullptr) != 1) crypto_fail("GCM init");
    if (!aad.empty() && EVP_DecryptUpdate(c, nullptr, &n, aad.data(), ilen(aad.size())) != 1) return false;
    if (!in.empty() && EVP_DecryptUpdate(c, out, &n, in.data(), ilen(in.size())) != 1) return false;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, kGcmTag, const_cast<uint8_t*>(tag)) != 1) return false;
    return EVP_DecryptFinal_ex(c, out + in.size(), &n) == 1;
}

Bytes siv_seal(const SecretKey& key, ByteView aad, ByteView in) {
    EVP_CIPHER_CTX* c = thread_ctx(1);
    int n = 0;
    Bytes out(kSivTag + in.size());
    if (EVP_EncryptInit_ex2(c, siv_cipher(), key.bytes().data(), nullptr, nullptr) != 1) crypto_fail("SIV init");
    if (EVP_EncryptUpdate(c, nullptr, &n, aad.data(), ilen(aad.size())) != 1) crypto_fail("SIV aad");
    if (EVP_EncryptUpdate(c, out.data() + kSivTag, &n, in.data(), ilen(in.size())) != 1) crypto_fail("SIV update");
    if (EVP_EncryptFinal_ex(c, out.data() + kSivTag + in.size(), &n) != 1) crypto_fail("SIV final");
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, kSivTag, out.data()) != 1) crypto_fail("SIV tag");
    return out;
}

std::optional<Bytes> siv_open(const SecretKey& key, ByteView aad, ByteView in) {
    if (in.size() < kSivTag) return std::nullopt;
    EVP_CIPHER_CTX* c = thread_ctx(1);
    int n = 0;
    Bytes out(in.size() - kSivTag);
    if (EVP_DecryptInit_ex2(c, siv_cipher(), key.bytes().data(), nullptr, nullptr) != 1) crypto_fail("SIV init");
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, kSivTag, const_cast<uint8_t*>(in.data())) != 1) return std::nullopt;
    if (EVP_DecryptUpdate(c, nullptr, &n, aad.data(), ilen(aad.size())) != 1) return std::nullopt;
    if (EVP_DecryptUpdate(c, out.data(), &n, in.data() + kSivTag, ilen(out.size())) != 1) return std::nullopt;
    if (EVP_DecryptFinal_ex(c, out.data() + out.size(), &n) != 1) return std::nullopt;
    return out;
}

std::array<uint8_t, 32> hmac_sha256(const SecretKey& key, ByteView data) {
    std::array<uint8_t, 32> out{};
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.bytes().data(), ilen(key.size()), data.data(), data.size(), out.data(), &len))
        crypto_fail("HMAC");
    return out;
}

std::array<uint8_t, 32> sha256(ByteView data) {
    std::array<uint8_t, 32> out{};
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1) crypto_fail("SHA-256");
    return out;
}

SecretKey pbkdf2_sha256(std::string_view passphrase, ByteView salt, uint32_t iterations, size_t len) {
    Bytes out(len);
    if (PKCS5_PBKDF2_HMAC(passphrase.data(), ilen(passphrase.size()), salt.data(), ilen(salt.size()), static_cast<int>(iterations),
                          EVP_sha256(), ilen(len), out.data()) != 1)
        crypto_fail("PBKDF2");
    SecretKey k(out);
    OPENSSL_cleanse(out.data(), out.size());
    return k;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1) crypto_fail("SHA-256 init");
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::update(ByteView data) {
    if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) != 1) crypto_fail("SHA-256 update");
}
std::array<uint8_t, 32> Sha256::final() {
    std::array<uint8_t, 32> out{};
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out.data(), &n) != 1) crypto_fail("SHA-256 final");
    return out;
}

bool equal_ct(ByteView a, ByteView b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hex(ByteView b) {
    static const char* d = "0123456789abcdef";
    std::string s;
    s.reserve(b.size() * 2);
    for (uint8_t x : b) {
        s.push_back(d[x >> 4]);
        s.push_back(d[x & 15]);
    }
    return s;
}

std::optional<Bytes> unhex(std::string_view s) {
    if (s.size() % 2) return std::nullopt;
    auto val = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    Bytes out(s.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) {
        int hi = val(s[2 * i]), lo = val(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return out;
}

static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(ByteView b) {
    std::string s;
    s.reserve((b.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= b.size(); i += 3) {
        uint32_t v = uint32_t(b[i]) << 16 | uint32_t(b[i + 1]) << 8 | b[i + 2];
        for (int k = 18; k >= 0; k -= 6) s.push_back(kB64[(v >> k) & 63]);
    }
    if (size_t rest = b.size() - i) {
        uint32_t v = uint32_t(b[i]) << 16 | (rest == 2 ? uint32_t(b[i + 1]) << 8 : 0);
        s.push_back(kB64[(v >> 18) & 63]);
        s.push_back(kB64[(v >> 12) & 63]);
        if (rest == 2) s.push_back(kB64[(v >> 6) & 63]);
    }
    return s;
}

std::optional<Bytes> unbase64url(std::string_view s) {
    auto val = [](char c) -> int {
        const char* p = std::strchr(kB64, c);
        return (c && p) ? static_cast<int>(p - kB64) : -1;
    };
    if (s.size() % 4 == 1) return std::nullopt;
    Bytes out;
    out.reserve(s.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : s) {
        int v = val(c);
        if (v < 0) return std::nullopt;
        acc = acc << 6 | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<uint8_t>(acc >> bits));
        }
    }
    // Non-canonical encodings (stray low bits) would give two names one meaning.
    if (bits && (acc & ((1u << bits) - 1))) return std::nullopt;
    return out;
}

// ---- files and Ed25519 -------------------------------------------------------

std::string sha256_fd(int fd, const std::string& what, uint64_t* size) {
    Sha256 h;
    Bytes buf(1 << 20);
    uint64_t total = 0;
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno(errno, what, "cannot read");
        if (n == 0) break;
        h.update(ByteView(buf.data(), static_cast<size_t>(n)));
        total += static_cast<uint64_t>(n);
    }
    if (size) *size = total;
    return hex(h.final());
}

namespace {

using PKey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

PKey read_public(const std::string& pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    PKey k(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr, EVP_PKEY_free);
    if (k && EVP_PKEY_get_id(k.get()) != EVP_PKEY_ED25519) k.reset();
    return k;
}

std::string der_fingerprint(EVP_PKEY* k) {
    unsigned char* der = nullptr;
    const int n = i2d_PUBKEY(k, &der);
    if (n <= 0) return "";
    const std::string fp = hex(sha256(ByteView(der, static_cast<size_t>(n))));
    OPENSSL_free(der);
    return fp;
}

}  // namespace

Ed25519Key::Ed25519Key(const SecretKey& seed) {
    key_ = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.bytes().data(), seed.size());
    if (!key_) crypto_fail("Ed25519 key");
}

Ed25519Key::~Ed25519Key() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

std::string Ed25519Key::public_pem() const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), static_cast<EVP_PKEY*>(key_)) != 1) crypto_fail("Ed25519 public key");
    char* p = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &p);
    return std::string(p, static_cast<size_t>(n));
}

std::string Ed25519Key::fingerprint() const { return der_fingerprint(static_cast<EVP_PKEY*>(key_)); }

Bytes Ed25519Key::sign(std::string_view msg) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    size_t n = 64;
    Bytes sig(n);
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) != 1 ||
        EVP_DigestSign(ctx.get(), sig.data(), &n, reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) != 1)
        crypto_fail("Ed25519 sign");
    sig.resize(n);
    return sig;
}

bool ed25519_verify(const std::string& pem, std::string_view msg, std::string_view sig) {
    PKey k = read_public(pem);
    if (!k) return false;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, k.get()) == 1 &&
           EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                            reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1;
}

std::string pem_fingerprint(const std::string& pem) {
    PKey k = read_public(pem);
    return k ? der_fingerprint(k.get()) : "";
}

}  // namespace nvrfs
