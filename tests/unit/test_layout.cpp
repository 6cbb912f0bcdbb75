#include "store/chunk_layout.hpp"

#include <doctest/doctest.h>

using namespace nvrfs;

TEST_CASE("stored and plain sizes are inverse for every boundary case") {
    const uint64_t sizes[] = {0, 1, 100, kChunkSize - 1, kChunkSize, kChunkSize + 1, 3 * kChunkSize, 3 * kChunkSize + 7,
                              1ull << 33};
    for (uint64_t s : sizes) {
        CAPTURE(s);
        CHECK(plain_size(stored_size(s)) == s);
        CHECK(plain_size_lenient(stored_size(s)) == s);
        // The last chunk ends where the stored file does; a full chunk ends kStoredChunk after it starts.
        CHECK(stored_end(s, last_chunk(s)) == stored_size(s));
        if (s > kChunkSize) CHECK(stored_end(s, 0) == stored_offset(1));
    }
    CHECK(stored_size(0) == kHeaderSize + kChunkOverhead);
    CHECK(stored_size(kChunkSize) == kHeaderSize + kStoredChunk);
    CHECK(chunk_count(0) == 1);
    CHECK(chunk_count(kChunkSize) == 1);
    CHECK(chunk_count(kChunkSize + 1) == 2);
}

TEST_CASE("impossible stored sizes are refused") {
    CHECK_FALSE(plain_size(0));
    CHECK_FALSE(plain_size(kHeaderSize));                       // no chunk at all
    CHECK_FALSE(plain_size(kHeaderSize + 5));                   // torn first chunk
    CHECK_FALSE(plain_size(kHeaderSize + kStoredChunk + 10));   // torn second chunk
    CHECK(plain_size_lenient(kHeaderSize + kStoredChunk + 10) == kChunkSize);
}

TEST_CASE("worked example from docs/format.md: a 100000-byte file") {
    CHECK(chunk_count(100000) == 2);
    CHECK(chunk_plain_len(100000, 0) == 65536);
    CHECK(chunk_plain_len(100000, 1) == 34464);
    CHECK(stored_offset(1) == 32 + 65564);
    CHECK(stored_size(100000) == 100088);
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
}
