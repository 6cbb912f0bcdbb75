#include "chunk_crypto.hpp"

namespace nvrfs {

SecretKey file_key(const SecretKey& content_key, const FileId& id) {
    return hkdf_sha256(content_key, ByteView(id.data(), id.size()), "nvrfs file content v1");
}

void seal_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, ByteView plain, uint8_t* out) {
    const ChunkAd ad = chunk_ad(h, idx, last);
    random_bytes({out, kGcmNonce});
    gcm_seal(fkey, out, ad, plain, out + kGcmNonce, out + kGcmNonce + plain.size());
}

bool open_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, ByteView stored, uint8_t* out) {
    if (stored.size() < kChunkOverhead || stored.size() > kStoredChunk) return false;
    const ChunkAd ad = chunk_ad(h, idx, last);
    const size_t n = stored.size() - kChunkOverhead;
    return gcm_open(fkey, stored.data(), ad, stored.subspan(kGcmNonce, n), stored.data() + kGcmNonce + n, out);
}

}  // namespace nvrfs
