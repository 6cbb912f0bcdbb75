// chunk_crypto.hpp — sealing and opening one stored chunk.
//
// Each file has its own key, HKDF(content key, salt = file id), so the random
// 96-bit GCM nonces of one key never approach the 2^32 safety limit even on a
// recorder that writes for years.
#pragma once
#include "chunk_layout.hpp"
#include "crypto.hpp"

namespace nvrfs {

SecretKey file_key(const SecretKey& content_key, const FileId& id);

// out must hold plain.size() + kChunkOverhead bytes.
void seal_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, ByteView plain, uint8_t* out);
// Returns false if the chunk is not authentic for (file, index, last, generation).
bool open_chunk(const SecretKey& fkey, const FileHeader& h, uint64_t idx, bool last, ByteView stored, uint8_t* out);

}  // namespace nvrfs
