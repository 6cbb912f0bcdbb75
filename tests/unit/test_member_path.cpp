// member_path: nothing on a member is followed out of it or through a link.
#include "base/crypto.hpp"
#include "base/error.hpp"
#include "helpers.hpp"
#include "base/member_path.hpp"
#include "store/superblock.hpp"

#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace nvrfs;

namespace {
struct Tree {
    std::string root, outside;
    UniqueFd fd;
    Tree() {
        char t[] = "/tmp/nvrfs-mp-XXXXXX";
        const std::string base = ::mkdtemp(t);
        root = base + "/member";
        outside = base + "/outside";
        ::mkdir(root.c_str(), 0700);
        ::mkdir(outside.c_str(), 0755);
        ::mkdir((root + "/d").c_str(), 0700);
        std::ofstream(root + "/d/f") << "stored";
        std::ofstream(outside + "/secret") << "secret";
        ::chmod((outside + "/secret").c_str(), 0600);
        fd.reset(::open(root.c_str(), O_RDONLY | O_DIRECTORY));
    }
    ~Tree() { std::system(("rm -rf " + root.substr(0, root.rfind('/'))).c_str()); }
};
}  // namespace

TEST_CASE("member_path refuses links, escapes and special files") {
    Tree t;
    const int r = t.fd.get();
    SUBCASE("a regular file opens") {
        const int f = member_path::open_file(r, "d/f", O_RDONLY);
        CHECK(f >= 0);
        ::close(f);
    }
    SUBCASE("a symlink as the last component: ELOOP, for every call") {
        REQUIRE(::symlink((t.outside + "/secret").c_str(), (t.root + "/d/l").c_str()) == 0);
        CHECK(member_path::open_file(r, "d/l", O_RDONLY) == -ELOOP);
        CHECK(member_path::open_file(r, "d/l", O_WRONLY | O_CREAT, 0600) == -ELOOP);
        CHECK(member_path::chmod(r, "d/l", 04755) == -ELOOP);
        struct stat st {};
        REQUIRE(::stat((t.outside + "/secret").c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0600);
        CHECK(member_path::stat(r, "d/l", st) == 0);
        CHECK(S_ISLNK(st.st_mode));  // the link itself, not its target
        CHECK(member_path::is_tamper_errno(ELOOP));
    }
    SUBCASE("a symlinked directory in the middle: ELOOP") {
        REQUIRE(::symlink(t.outside.c_str(), (t.root + "/e").c_str()) == 0);
        CHECK(member_path::open_file(r, "e/secret", O_RDONLY) == -ELOOP);
        CHECK(member_path::unlink(r, "e/secret") == -ELOOP);
        CHECK(::access((t.outside + "/secret").c_str(), F_OK) == 0);
        CHECK(member_path::mkdir(r, "e/new", 0700) == -ELOOP);
    }
    SUBCASE("'..' and absolute paths do not leave the member") {
        CHECK(member_path::open_file(r, "../outside/secret", O_RDONLY) == -ELOOP);
        CHECK(member_path::open_file(r, "d/../../outside/secret", O_RDONLY) == -ELOOP);
        CHECK(member_path::open_file(r, t.outside + "/secret", O_RDONLY) == -ELOOP);
    }
    SUBCASE("a fifo where a file should be: refused at once, never blocks") {
        REQUIRE(::mkfifo((t.root + "/d/p").c_str(), 0600) == 0);
        CHECK(member_path::open_file(r, "d/p", O_RDONLY) == -EMEDIUMTYPE);
        CHECK(member_path::is_tamper_errno(EMEDIUMTYPE));
    }
    SUBCASE("a directory where a file should be") { CHECK(member_path::open_file(r, "d", O_RDONLY) == -EISDIR); }
}

TEST_CASE("superblock: reserved bytes and unknown flags are refused") {
    Superblock sb;
    sb.set_uuid = new_uuid();
    sb.member_uuid = new_uuid();
    const KeySet keys = KeySet::derive(SecretKey::random(32));
    auto good = sb.encode(keys);
    CHECK_NOTHROW(Superblock::decode(ByteView(good.data(), good.size()), "m"));
    auto reseal = [](std::array<uint8_t, kSuperblockSize> b) {
        const auto sum = sha256(ByteView(b.data(), 224));
        std::memcpy(b.data() + 224, sum.data(), 32);
        return b;
    };
    auto reserved = good;
    reserved[150] = 1;
    reserved = reseal(reserved);
    CHECK_THROWS_WITH_AS(Superblock::decode(ByteView(reserved.data(), reserved.size()), "m"), doctest::Contains("reserved byte"), Error);
    auto flags = good;
    flags[15] |= 8;
    flags = reseal(flags);
    CHECK_THROWS_WITH_AS(Superblock::decode(ByteView(flags.data(), flags.size()), "m"), doctest::Contains("unknown flags"), Error);

    // Bit 2: failed by the administrator. Kept through a write and a read,
    // and under the MAC: set or cleared without the key, it fails it.
    Superblock failed = sb;
    failed.failed = true;
    auto fb = failed.encode(keys);
    const Superblock back = Superblock::decode(ByteView(fb.data(), fb.size()), "m");
    CHECK(back.failed);
    CHECK(back.mac_ok(keys));
    fb[15] &= static_cast<uint8_t>(~4);
    fb = reseal(fb);
    const Superblock cleared = Superblock::decode(ByteView(fb.data(), fb.size()), "m");
    CHECK_FALSE(cleared.failed);
    CHECK_FALSE(cleared.mac_ok(keys));

    // Version 1 (written by builds before format version 2 files): read, its
    // MAC checked as written, and rewritten as version 2, which a version 1
    // build refuses. Version 3 is refused here.
    CHECK(good[11] == 2);
    auto v1 = good;
    v1[11] = 1;
    const auto mac = hmac_sha256(keys.sb_mac, ByteView(v1.data(), 192));
    std::memcpy(v1.data() + 192, mac.data(), 32);
    v1 = reseal(v1);
    Superblock old = Superblock::decode(ByteView(v1.data(), v1.size()), "m");
    CHECK(old.version == 1);
    CHECK(old.mac_ok(keys));
    CHECK(old.encode(keys)[11] == 2);
    CHECK(old.mac_ok(keys));
    auto v3 = good;
    v3[11] = 3;
    v3 = reseal(v3);
    CHECK_THROWS_WITH_AS(Superblock::decode(ByteView(v3.data(), v3.size()), "m"), doctest::Contains("version 3 is not supported"), Error);
}

TEST_CASE("member_path: chown of a planted link is refused, not applied to the link or its target") {
    Tree t;
    REQUIRE(::symlink((t.outside + "/secret").c_str(), (t.root + "/d/l").c_str()) == 0);
    CHECK(member_path::chown(t.fd.get(), "d/l", 65534, 65534) == -ELOOP);
    struct stat st {};
    REQUIRE(::stat((t.outside + "/secret").c_str(), &st) == 0);
    CHECK(st.st_uid == 0);
}
