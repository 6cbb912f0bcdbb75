#include "store/chunk_crypto.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace nvrfs {
namespace {

// The zero form's associated data: the chunk's own, then 'Z' and n, so a
// zero-form tag can never pass as an ordinary chunk's or another length's.
std::array<uint8_t, sizeof(ChunkAd) + 1 + 8> zero_ad(const FileHeader& h, uint64_t idx, bool last, size_t n) {
    std::array<uint8_t, sizeof(ChunkAd) + 1 + 8> ad{};
    const ChunkAd base = chunk_ad(h, idx, last);
    std::memcpy(ad.data(), base.data(), base.size());
    ad[base.size()] = 'Z';
    for (int i = 0; i < 8; ++i) ad[base.size() + 1 + i] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> (56 - 8 * i));
    return ad;
}

// The zero form's tag: a GMAC (GCM over no plaintext) of its AD.
std::array<uint8_t, kGcmTag> zero_tag(const SecretKey& fkey, const uint8_t* nonce, const FileHeader& h, uint64_t idx, bool last,
                                      size_t n) {
    std::array<uint8_t, kGcmTag> tag{};
    const auto ad = zero_ad(h, idx, last, n);
    uint8_t none[1];
    gcm_seal(fkey, nonce, ad, {}, none, tag.data());
    return tag;
}

}  // namespace

SecretKey file_key(const SecretKey& content_key, const FileHeader& h) {
    const ByteView salt(h.id.data(), h.id.size());
    if (h.kind == Kind::File) return hkdf_sha256(content_key, salt, "nvrfs file content v1");
    char info[48];
    std::snprintf(info, sizeof info, "nvrfs special v1 kind %u mode %04o", static_cast<unsigned>(h.kind), h.perms);
    return hkdf_sha256(content_key, salt, info);
}

void seal_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, ByteView plain, uint8_t* out) {
    const ChunkAd ad = chunk_ad(h, idx, last);
    random_bytes({out, kGcmNonce});
    gcm_seal(fkey, out, ad, plain, out + kGcmNonce, out + kGcmNonce + plain.size());
}

ZeroChunkEnds seal_zero_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, size_t n) {
    ZeroChunkEnds z{};
    random_bytes(z.nonce);
    z.tag = zero_tag(fkey, z.nonce.data(), h, idx, last, n);
    return z;
}

bool open_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, ByteView stored, uint8_t* out) {
    if (stored.size() < kChunkOverhead || stored.size() > kStoredChunk) return false;
    const ChunkAd ad = chunk_ad(h, idx, last);
    const size_t n = stored.size() - kChunkOverhead;
    const uint8_t* body = stored.data() + kGcmNonce;
    if (gcm_open(fkey, stored.data(), ad, stored.subspan(kGcmNonce, n), body + n, out)) return true;
    // The zero form: its body must really be zeros (anything else there is
    // tampering even if the tag is good), and its tag must verify.
    if (std::any_of(body, body + n, [](uint8_t b) { return b != 0; })) return false;
    if (!equal_ct(zero_tag(fkey, stored.data(), h, idx, last, n), ByteView(body + n, kGcmTag))) return false;
    std::memset(out, 0, n);
    return true;
}

}  // namespace nvrfs
