#include "store/chunk_layout.hpp"
#include "base/big_endian.hpp"

#include <algorithm>
#include <cstring>

namespace nvrfs {
namespace {
constexpr uint8_t kMagic[4] = {'N', 'V', 'R', 'F'};
constexpr uint16_t kArchivedKind = 4;

}  // namespace

std::array<uint8_t, kHeaderSize> FileHeader::encode() const {
    std::array<uint8_t, kHeaderSize> b{};
    std::memcpy(b.data(), kMagic, 4);
    b[4] = static_cast<uint8_t>(version >> 8);
    b[5] = static_cast<uint8_t>(version & 0xff);
    // b[6..7]: flags = kind << 12 | perms; zero for a regular file, 4 << 12
    // for one whose chunks but the last are in the archive tier
    const uint16_t k = archived ? kArchivedKind : static_cast<uint16_t>(kind);
    const uint16_t flags = static_cast<uint16_t>(k << 12 | (perms & 07777));
    b[6] = static_cast<uint8_t>(flags >> 8);
    b[7] = static_cast<uint8_t>(flags & 0xff);
    std::memcpy(b.data() + 8, id.data(), id.size());
    put64(b.data() + 24, generation);
    return b;
}

std::optional<FileHeader> FileHeader::decode(std::span<const uint8_t> b) {
    if (b.size() < kHeaderSize || std::memcmp(b.data(), kMagic, 4) != 0) return std::nullopt;
    const uint16_t version = static_cast<uint16_t>(b[4] << 8 | b[5]);
    if (version != kFormatV1 && version != kFormatVersion) return std::nullopt;
    const uint16_t flags = static_cast<uint16_t>(b[6] << 8 | b[7]);
    uint16_t kind = flags >> 12;
    const uint16_t perms = flags & 07777;
    const bool archived = kind == kArchivedKind;
    if (archived) kind = static_cast<uint16_t>(Kind::File);
    if (kind > static_cast<uint16_t>(Kind::Socket) || (perms && kind != static_cast<uint16_t>(Kind::Fifo) &&
                                                        kind != static_cast<uint16_t>(Kind::Socket)))
        return std::nullopt;
    FileHeader h;
    h.version = version;
    h.kind = static_cast<Kind>(kind);
    h.archived = archived;
    h.perms = perms;
    std::memcpy(h.id.data(), b.data() + 8, h.id.size());
    h.generation = get64(b.data() + 24);
    return h;
}

uint64_t chunk_plain_len(uint64_t plain, uint64_t idx) {
    const uint64_t start = idx * kChunkSize;
    if (start >= plain) return 0;
    return std::min(kChunkSize, plain - start);
}

uint64_t chunk_count(uint16_t version, uint64_t plain) {
    if (version == kFormatV1) return plain == 0 ? 1 : (plain + kChunkSize - 1) / kChunkSize;
    return plain / kChunkSize + 1;
}

uint64_t stored_size(uint16_t version, uint64_t plain) {
    return kHeaderSize + chunk_count(version, plain) * kChunkOverhead + plain;
}

std::optional<uint64_t> plain_size(uint16_t version, uint64_t stored) {
    if (stored < kHeaderSize + kChunkOverhead) return std::nullopt;
    const uint64_t body = stored - kHeaderSize;
    const uint64_t full = body / kStoredChunk, rem = body % kStoredChunk;
    // Version 1 ends in a full chunk or a partial one; version 2 always in a
    // partial (possibly empty) one. A version 1 body of exactly 28 bytes is
    // the empty file's one empty chunk.
    if (version == kFormatV1) {
        if (body == kChunkOverhead) return 0;
        if (rem == 0) return full * kChunkSize;
        if (rem <= kChunkOverhead) return std::nullopt;
    } else if (rem < kChunkOverhead) {
        return std::nullopt;
    }
    return full * kChunkSize + rem - kChunkOverhead;
}

uint64_t plain_size_lenient(uint64_t stored) {
    if (auto s = plain_size(kFormatV1, stored)) return *s;
    if (stored < kHeaderSize) return 0;
    return (stored - kHeaderSize) / kStoredChunk * kChunkSize;
}

ChunkAd chunk_ad(const FileHeader& h, uint64_t idx, bool last) {
    ChunkAd ad{};
    std::memcpy(ad.data(), h.id.data(), 16);
    put64(ad.data() + 16, idx);
    ad[24] = static_cast<uint8_t>((last ? 1 : 0) | (h.version == kFormatV1 ? 0 : 2));
    put64(ad.data() + 25, h.generation);
    return ad;
}

}  // namespace nvrfs
