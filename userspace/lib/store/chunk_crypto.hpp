// chunk_crypto.hpp — sealing and opening one stored chunk.
//
// Each file has its own key, HKDF(content key, salt = file id), so the random
// 96-bit GCM nonces of one key never approach the 2^32 safety limit even on a
// recorder that writes for years.
//
// A chunk of n zero bytes may also be stored in the zero form: nonce ‖ n zero
// bytes ‖ tag, where the tag is a GMAC over the chunk's associated data, a
// "zero" mark and n. Only the nonce and the tag are ever written, so a hole
// (a file grown by truncate, fallocate or a write past its end) stays a hole
// on the member. Without the file key nobody can make that tag, so zeroing a
// recording's chunks on a disk is still detected.
#pragma once
#include "store/chunk_layout.hpp"
#include "base/crypto.hpp"

namespace nvrfs {

// A regular file's key is HKDF(content key, salt = file id, "nvrfs file
// content v1"); any other kind's info also names its kind and permissions.
SecretKey file_key(const SecretKey& content_key, const FileHeader& h);

// out must hold plain.size() + kChunkOverhead bytes.
void seal_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, ByteView plain, uint8_t* out);
// Returns false if the chunk is not authentic for (file, index, last,
// generation), in either form; the zero form opens to n zero bytes.
bool open_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, ByteView stored, uint8_t* out);

// The two ends of a zero chunk of n bytes: the nonce (kGcmNonce bytes, at the
// chunk's start) and the tag (kGcmTag bytes, n bytes after the nonce).
struct ZeroChunkEnds {
    std::array<uint8_t, kGcmNonce> nonce;
    std::array<uint8_t, kGcmTag> tag;
};
ZeroChunkEnds seal_zero_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, size_t n);

}  // namespace nvrfs
