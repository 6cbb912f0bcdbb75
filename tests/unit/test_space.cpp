// space: a write on a full set waits for recycling as long as recycling frees
// space, and answers ENOSPC at once when there is nothing left to recycle.
#include "fixture.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/mount.h>
#include <sys/statvfs.h>

using namespace nvrfs;

namespace {

struct Tmpfs {
    test::TempDir dir{"nvrfs-unit-fs"};
    bool ok = false;
    explicit Tmpfs(const std::string& size) {
        ok = ::mount("tmpfs", dir.path.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
    }
    ~Tmpfs() {
        if (ok) ::umount2(dir.path.c_str(), MNT_DETACH);
    }
};

// Takes all but `leave` bytes of the file system holding `path`.
void fill(const std::string& path, uint64_t leave) {
    struct statvfs s {};
    REQUIRE(::statvfs(path.substr(0, path.rfind('/')).c_str(), &s) == 0);
    const uint64_t avail = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
    REQUIRE(avail > leave);
    UniqueFd fd(::open(path.c_str(), O_CREAT | O_WRONLY, 0600));
    REQUIRE(::posix_fallocate(fd.get(), 0, static_cast<off_t>(avail - leave)) == 0);
}

}  // namespace

TEST_CASE("a write on a full set waits while recycling frees space, however many rounds it takes") {
    Tmpfs fs("48m");
    REQUIRE(fs.ok);  // the tests run as root
    test::Fixture fx(fs.dir.path);
    const std::string ballast = fs.dir.path + "/ballast";  // both members are on this tmpfs
    fill(ballast, 4 << 20);                                // below the metadata reserve
    int asked = 0;
    fx.vol->set_on_full([&](uint64_t) {
        // Other writers take what each of the first rounds frees: more rounds
        // than the eight tries a write used to make before answering ENOSPC.
        if (++asked == 12) ::unlink(ballast.c_str());
        return true;
    });
    const std::string data(1 << 20, 'v');
    CHECK(test::error_of([&] { fx.write_file("/1.mp4", data); }) == 0);
    CHECK(asked == 12);
    CHECK(fx.read_file("/1.mp4") == data);

    fill(ballast, 4 << 20);
    asked = 0;
    fx.vol->set_on_full([&](uint64_t) {
        ++asked;
        return false;  // nothing left that may be recycled
    });
    CHECK(test::error_of([&] { fx.write_file("/2.mp4", data); }) == ENOSPC);
    CHECK(asked == 1);
    CHECK(fx.read_file("/1.mp4") == data);  // what was written is kept
    fx.vol->set_on_full({});
}

TEST_CASE("a set fills with recordings, not with what open files reserve ahead") {
    Tmpfs fs("64m");
    REQUIRE(fs.ok);
    test::Fixture fx(fs.dir.path);  // both members on this tmpfs: each byte counts twice
    // Six cameras recording at once, each a segment begun: each may reserve
    // ahead, but not the room another one's recordings need.
    const std::string part(64 << 10, 'c');
    std::vector<std::unique_ptr<Handle>> open;
    for (int c = 0; c < 6; ++c) {
        open.push_back(fx.vol->create(fmt::format("/cam{}.mp4", c), 0644, O_CREAT | O_WRONLY | O_TRUNC, fx.who));
        CHECK(test::error_of([&] { fx.vol->write(*open.back(), reinterpret_cast<const uint8_t*>(part.data()), part.size(), 0); }) == 0);
    }
    const std::string data(4 << 20, 'v');
    CHECK(test::error_of([&] { fx.write_file("/7.mp4", data); }) == 0);
    for (auto& h : open) {
        const std::string more(1 << 20, 'm');
        CHECK(test::error_of([&] { fx.vol->write(*h, reinterpret_cast<const uint8_t*>(more.data()), more.size(), part.size()); }) == 0);
        fx.vol->release(std::move(h));
    }
    CHECK(fx.read_file("/7.mp4") == data);
    CHECK(fx.read_file("/cam5.mp4").size() == part.size() + (1 << 20));
}
