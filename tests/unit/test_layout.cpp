#include "store/chunk_layout.hpp"

#include <doctest/doctest.h>

using namespace nvrfs;

TEST_CASE("stored and plain sizes are inverse for every boundary case, in both versions") {
    const uint64_t sizes[] = {0, 1, 100, kChunkSize - 1, kChunkSize, kChunkSize + 1, 3 * kChunkSize, 3 * kChunkSize + 7,
                              1ull << 33};
    for (uint16_t v : {kFormatV1, kFormatVersion}) {
        for (uint64_t s : sizes) {
            CAPTURE(v);
            CAPTURE(s);
            CHECK(plain_size(v, stored_size(v, s)) == s);
            CHECK(plain_size_lenient(stored_size(v, s)) == s);
            // The last chunk ends where the stored file does; a full chunk ends kStoredChunk after it starts.
            CHECK(stored_end(s, last_chunk(v, s)) == stored_size(v, s));
            if (s > kChunkSize) CHECK(stored_end(s, 0) == stored_offset(1));
        }
        CHECK(stored_size(v, 0) == kHeaderSize + kChunkOverhead);
        CHECK(chunk_count(v, 0) == 1);
        CHECK(chunk_count(v, kChunkSize + 1) == 2);
    }
    // The versions differ only where a file ends on a chunk boundary:
    // version 1 ends in the full chunk, version 2 in an empty one after it.
    CHECK(stored_size(kFormatV1, kChunkSize) == kHeaderSize + kStoredChunk);
    CHECK(stored_size(kFormatVersion, kChunkSize) == kHeaderSize + kStoredChunk + kChunkOverhead);
    CHECK(chunk_count(kFormatV1, kChunkSize) == 1);
    CHECK(chunk_count(kFormatVersion, kChunkSize) == 2);
    CHECK(chunk_plain_len(kChunkSize, 1) == 0);
    // Each version's boundary layout is invalid in the other.
    CHECK_FALSE(plain_size(kFormatVersion, stored_size(kFormatV1, 2 * kChunkSize)));
    CHECK_FALSE(plain_size(kFormatV1, stored_size(kFormatVersion, 2 * kChunkSize)));
    for (uint64_t s : {uint64_t{1}, kChunkSize - 1, kChunkSize + 1})
        CHECK(stored_size(kFormatV1, s) == stored_size(kFormatVersion, s));
}

TEST_CASE("impossible stored sizes are refused") {
    for (uint16_t v : {kFormatV1, kFormatVersion}) {
        CAPTURE(v);
        CHECK_FALSE(plain_size(v, 0));
        CHECK_FALSE(plain_size(v, kHeaderSize));                       // no chunk at all
        CHECK_FALSE(plain_size(v, kHeaderSize + 5));                   // torn first chunk
        CHECK_FALSE(plain_size(v, kHeaderSize + kStoredChunk + 10));   // torn second chunk
    }
    CHECK(plain_size_lenient(kHeaderSize + kStoredChunk + 10) == kChunkSize);
}

TEST_CASE("worked example from docs/format.md: a 100000-byte file") {
    CHECK(chunk_count(kFormatVersion, 100000) == 2);
    CHECK(chunk_plain_len(100000, 0) == 65536);
    CHECK(chunk_plain_len(100000, 1) == 34464);
    CHECK(stored_offset(1) == 32 + 65564);
    CHECK(stored_size(kFormatVersion, 100000) == 100088);
}

TEST_CASE("file header encode/decode") {
    FileHeader h;
    h.id.fill(0xab);
    h.generation = 42;
    auto b = h.encode();
    auto d = FileHeader::decode(b);
    REQUIRE(d);
    CHECK(*d == h);
    b[0] = 'X';
    CHECK_FALSE(FileHeader::decode(b));
    b = h.encode();
    b[5] = 9;  // unknown version
    CHECK_FALSE(FileHeader::decode(b));
    // Version 1 files are still read, and say so.
    CHECK(h.version == kFormatVersion);
    h.version = kFormatV1;
    b = h.encode();
    CHECK(b[5] == 1);
    d = FileHeader::decode(b);
    REQUIRE(d);
    CHECK(d->version == kFormatV1);
}

TEST_CASE("chunk associated data differs in every bound field") {
    FileHeader h;
    const auto base = chunk_ad(h, 1, false);
    CHECK(base != chunk_ad(h, 2, false));
    CHECK(base != chunk_ad(h, 1, true));
    FileHeader g = h;
    g.generation = 1;
    CHECK(base != chunk_ad(g, 1, false));
    g = h;
    g.id[0] = 1;
    CHECK(base != chunk_ad(g, 1, false));
    g = h;
    g.version = kFormatV1;  // a header's version changed on a disk
    CHECK(base != chunk_ad(g, 1, false));
    CHECK(chunk_ad(g, 1, true)[24] == 1);  // version 1's associated data is what it always was
}
