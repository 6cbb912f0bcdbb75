// Issue 13 at the Volume level: holes, symlinks/fifos/sockets, long names,
// open-but-unlinked bookkeeping — and each one's stored form under attack.
#include "store/chunk_crypto.hpp"
#include "base/error.hpp"
#include "fixture.hpp"
#include "store/volume.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

using namespace nvrfs;
using namespace nvrfs::test;


TEST_CASE("a grown file is stored as zero-form chunks: holes on the members, zeros to read") {
    Fixture fx;
    fx.write_file("/big", "head");
    fx.vol->truncate("/big", 64ull << 20, nullptr, fx.who);
    struct stat st {};
    const std::string stored = fx.stored_file(0);
    REQUIRE(::stat(stored.c_str(), &st) == 0);
    CHECK(static_cast<uint64_t>(st.st_size) == stored_size(kFormatVersion, 64ull << 20));
    CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < (8ull << 20));  // 1/16 of the size at most (two ends per chunk)
    const std::string back = fx.read_file("/big");
    REQUIRE(back.size() == (64ull << 20));
    CHECK(back.substr(0, 4) == "head");
    CHECK(back.find_first_not_of('\0', 4) == std::string::npos);

    SUBCASE("data written into the hole is read back around zeros") {
        auto h = fx.vol->open("/big", O_RDWR, fx.who);
        const std::string d(100000, 'd');
        fx.vol->write(*h, reinterpret_cast<const uint8_t*>(d.data()), d.size(), 30ull << 20);
        fx.vol->release(std::move(h));
        const std::string b2 = fx.read_file("/big");
        CHECK(b2.substr(30ull << 20, d.size()) == d);
        CHECK(b2[(30ull << 20) - 1] == '\0');
        CHECK(b2[(30ull << 20) + d.size()] == '\0');
    }
    SUBCASE("bytes written into a hole's body on every member are tamper, not zeros") {
        fx.unmount();
        for (size_t m = 0; m < 2; ++m) {
            std::fstream f(fx.stored_file(m), std::ios::in | std::ios::out | std::ios::binary);
            f.seekp(static_cast<std::streamoff>(stored_offset(100) + kGcmNonce + 5));
            f.write("X", 1);
        }
        fx.mount();
        CHECK_THROWS_AS(fx.read_file("/big"), Error);
        CHECK(fx.alerted(alert::TamperDetected, "chunk 100"));
    }
}

TEST_CASE("symlinks, fifos and sockets are stored files whose kind is authenticated") {
    Fixture fx;
    fx.vol->symlink("cam1/seg.mp4", "/latest", fx.who);
    fx.vol->mknod("/pipe", S_IFIFO | 0640, fx.who);
    fx.vol->mknod("/sock", S_IFSOCK | 0600, fx.who);
    CHECK(fx.vol->readlink("/latest") == "cam1/seg.mp4");
    CHECK(S_ISLNK(fx.vol->getattr("/latest", nullptr).st_mode));
    CHECK(fx.vol->getattr("/latest", nullptr).st_size == 12);
    CHECK(fx.vol->getattr("/pipe", nullptr).st_mode == (S_IFIFO | 0640));
    CHECK(fx.vol->getattr("/sock", nullptr).st_mode == (S_IFSOCK | 0600));
    fx.vol->chmod("/pipe", 0600);
    CHECK(fx.vol->getattr("/pipe", nullptr).st_mode == (S_IFIFO | 0600));
    CHECK_THROWS_AS(fx.vol->mknod("/dev", S_IFCHR | 0600, fx.who), Error);
    CHECK_THROWS_AS(fx.vol->readlink("/pipe"), Error);
    CHECK_THROWS_AS(fx.vol->symlink("x", "/latest", fx.who), Error);  // EEXIST
    for (auto& [rel, data] : tree_of(fx.members[0])) {
        struct stat st {};
        REQUIRE(::lstat((fx.members[0] + "/" + rel).c_str(), &st) == 0);
        CHECK((S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)));
    }

    SUBCASE("a fifo's mode changed in its header on every member fails authentication") {
        fx.unmount();
        for (size_t m = 0; m < 2; ++m)
            for (auto& [rel, data] : tree_of(fx.members[m])) {
                const std::string p = fx.members[m] + "/" + rel;
                auto h = data.size() >= kHeaderSize ? FileHeader::decode(std::span(reinterpret_cast<const uint8_t*>(data.data()), kHeaderSize)) : std::nullopt;
                if (!h || h->kind != Kind::Fifo) continue;
                h->perms = 0666;
                const auto b = h->encode();
                std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
                f.write(reinterpret_cast<const char*>(b.data()), b.size());
            }
        fx.mount();
        CHECK(fx.vol->getattr("/pipe", nullptr).st_mode == (S_IFIFO | 0666));  // what the header claims ...
        Volume::ScrubStats s;
        CHECK_THROWS_AS(fx.vol->scrub_file("/pipe", false, s), Error);         // ... which its key refutes
        CHECK(fx.alerted(alert::TamperDetected, "/pipe"));
    }
}

TEST_CASE("255-byte names: a hashed member name and an authenticated side file") {
    Fixture fx;
    const std::string L(255, 'L'), M(255, 'M');
    fx.vol->mkdir("/" + L, 0755, fx.who);
    fx.write_file("/" + L + "/" + L, "long");
    CHECK(fx.read_file("/" + L + "/" + L) == "long");
    CHECK(fx.vol->readdir("/" + L) == std::vector<std::string>{L});
    CHECK_THROWS_AS(fx.vol->mkdir("/" + std::string(256, 'x'), 0755, fx.who), Error);
    for (auto& [rel, data] : tree_of(fx.members[0])) {
        const std::string base = rel.substr(rel.rfind('/') + 1);
        CHECK(base.size() <= 255);
    }
    fx.vol->rename("/" + L + "/" + L, "/" + L + "/" + M, 0, fx.who);
    CHECK(fx.vol->readdir("/" + L) == std::vector<std::string>{M});
    fx.vol->unlink("/" + L + "/" + M, fx.who);
    fx.vol->rmdir("/" + L, fx.who);
    // Nothing is left behind: no entry, no side file.
    for (size_t m = 0; m < 2; ++m)
        for (auto& [rel, data] : tree_of(fx.members[m])) CHECK(rel.find("nvrfs.long") == std::string::npos);
}

TEST_CASE("a long name's side file copied from another entry is no name at all") {
    Fixture fx;
    const std::string A(200, 'a'), B(200, 'b');
    fx.write_file("/" + A, "a");
    fx.write_file("/" + B, "b");
    fx.unmount();
    for (size_t m = 0; m < 2; ++m) {
        std::vector<std::string> sides;
        for (auto& [rel, data] : tree_of(fx.members[m]))
            if (is_long_side(rel)) sides.push_back(fx.members[m] + "/" + rel);
        REQUIRE(sides.size() == 2);
        std::ifstream in(sides[0], std::ios::binary);
        const std::string content((std::istreambuf_iterator<char>(in)), {});
        ::chmod(sides[1].c_str(), 0600);
        std::ofstream(sides[1], std::ios::binary | std::ios::trunc) << content;
    }
    fx.mount();
    const auto names = fx.vol->readdir("/");
    CHECK(names.size() == 1);  // the swapped one is not shown as the other's name twice
    CHECK(fx.alerted(alert::TamperDetected, "not valid nvrfs names"));
}
