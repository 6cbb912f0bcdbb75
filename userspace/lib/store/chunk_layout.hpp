// chunk_layout.hpp — the stored file format as pure arithmetic (no I/O).
//
// A stored file is a 32-byte header followed by chunks. Every chunk holds up to
// 64 KiB of plaintext sealed with AES-256-GCM: nonce(12) ‖ ciphertext ‖ tag(16).
// A file always has at least one chunk; an empty file is one sealed empty chunk,
// so cutting a file down to its header is detected like any other truncation.
// docs/format.md shows the bytes and a worked example.
//
// Two versions, named in each file's header. Version 1: the last chunk holds
// 1..64 KiB (0 only in an empty file), so an append that starts a new chunk
// must seal the old last chunk again with last = 0 — with a camera's 32 KiB
// writes every 64 KiB is sealed and written about twice. Version 2: the last
// chunk holds 0..64 KiB - 1: a file whose size is a multiple of 64 KiB ends in
// an empty chunk, so a chunk sealed full is never sealed again by an append.
// Chunk positions and lengths are the same in both; only the chunk count (and
// with it the stored size) differs, for sizes that are multiples of 64 KiB.
// New files are version 2; version 1 files are read and written as such.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <span>

namespace nvrfs {

using FileId = std::array<uint8_t, 16>;

constexpr uint64_t kChunkSize = 64 * 1024;
constexpr uint64_t kChunkOverhead = 12 + 16;
constexpr uint64_t kStoredChunk = kChunkSize + kChunkOverhead;
constexpr uint64_t kHeaderSize = 32;
constexpr uint16_t kFormatV1 = 1;
constexpr uint16_t kFormatVersion = 2;  // what new files are written as

// What a stored file is. Symlinks, fifos and sockets are stored as member
// regular files too (a member never holds a link or a special file): the
// kind and, for fifos and sockets, the permission bits are the header's
// flags, and both are bound into the file key (chunk_crypto.hpp), so a
// changed kind or mode fails authentication.
enum class Kind : uint16_t { File = 0, Symlink = 1, Fifo = 2, Socket = 3 };

struct FileHeader {
    FileId id{};
    uint64_t generation = 0;  // bumped when the file is truncated to zero
    Kind kind = Kind::File;
    uint16_t perms = 0;       // fifos and sockets: their mode & 07777; else 0
    // A regular file whose chunks, all but the last, are in the archive tier
    // (object store) and holes on the members. Not bound into the key: the
    // chunks are the same bytes either way, and a flag flipped on a disk
    // sends reads where the chunks do not authenticate (EIO, never data).
    bool archived = false;
    uint16_t version = kFormatVersion;  // kFormatV1 or kFormatVersion

    std::array<uint8_t, kHeaderSize> encode() const;
    static std::optional<FileHeader> decode(std::span<const uint8_t> b);
    bool operator==(const FileHeader&) const = default;
};

// Number of chunks a file of `plain` bytes is stored in (never zero).
uint64_t chunk_count(uint16_t version, uint64_t plain);
inline uint64_t last_chunk(uint16_t version, uint64_t plain) { return chunk_count(version, plain) - 1; }
inline uint64_t stored_offset(uint64_t chunk) { return kHeaderSize + chunk * kStoredChunk; }
// Plaintext bytes held by chunk `idx` of a file of `plain` bytes (either version).
uint64_t chunk_plain_len(uint64_t plain, uint64_t idx);
// Stored bytes of chunk `idx` of a file of `plain` bytes (nonce, ciphertext, tag).
inline uint64_t stored_chunk_len(uint64_t plain, uint64_t idx) { return chunk_plain_len(plain, idx) + kChunkOverhead; }
// One past the last stored byte of chunk `idx` of a file of `plain` bytes.
inline uint64_t stored_end(uint64_t plain, uint64_t idx) { return stored_offset(idx) + stored_chunk_len(plain, idx); }
uint64_t stored_size(uint16_t version, uint64_t plain);

// Plaintext size of a stored file, or nullopt when the stored size cannot be a
// valid file of that version (no chunk, or a torn chunk shorter than its overhead).
std::optional<uint64_t> plain_size(uint16_t version, uint64_t stored);
// Best effort for stat() (either version): ignores a torn tail. Reads still authenticate.
uint64_t plain_size_lenient(uint64_t stored);

// Associated data of a chunk: file id ‖ index ‖ flags ‖ generation, flags =
// last (1) | version 2 (2). Binding them stops chunk swaps, splices between
// files, truncation at a chunk boundary, replay of chunks from before a
// truncate-to-zero, and a header's version changed to read a file's chunks
// with the other version's layout.
using ChunkAd = std::array<uint8_t, 16 + 8 + 1 + 8>;
ChunkAd chunk_ad(const FileHeader& h, uint64_t idx, bool last);

}  // namespace nvrfs
