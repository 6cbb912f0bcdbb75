// io: UncachedReader gives the same bytes as a plain read, wherever they lie.
#include "base/io.hpp"
#include "helpers.hpp"

#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <vector>

using namespace nvrfs;

TEST_CASE("UncachedReader reads what pread reads, at any offset and length, short only at the end") {
    test::TempDir d;
    const std::string p = d.path + "/f";
    // Not a multiple of any block size, so that the end is unaligned.
    std::vector<uint8_t> data(3 * 65564 + 32 + 777);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + (i >> 9));
    UniqueFd w(::open(p.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600));
    REQUIRE(pwrite_full(w.get(), data.data(), data.size(), 0) == 0);
    UniqueFd fd(::open(p.c_str(), O_RDONLY));
    UncachedReader r(fd.get());
    struct Case {
        uint64_t off;
        size_t len;
    };
    for (const Case c : {Case{0, 4096}, Case{32, 65564}, Case{32 + 65564, 2 * 65564}, Case{1, 1}, Case{4095, 2},
                         Case{data.size() - 777, 777}, Case{data.size() - 10, 4096}, Case{data.size(), 100}, Case{data.size() + 5000, 10},
                         Case{0, data.size()}}) {
        CAPTURE(c.off);
        CAPTURE(c.len);
        uint8_t* got = nullptr;
        const ssize_t n = r.read(c.off, c.len, got);
        const size_t want = c.off >= data.size() ? 0 : std::min(c.len, data.size() - static_cast<size_t>(c.off));
        REQUIRE(n == static_cast<ssize_t>(want));
        if (want) CHECK(std::memcmp(got, data.data() + c.off, want) == 0);
    }
    // A byte changed through the page cache is seen (the kernel writes it back first).
    const uint8_t x = static_cast<uint8_t>(~data[70000]);
    REQUIRE(pwrite_full(w.get(), &x, 1, 70000) == 0);
    uint8_t* got = nullptr;
    REQUIRE(r.read(69999, 3, got) == 3);
    CHECK(got[1] == x);
}
