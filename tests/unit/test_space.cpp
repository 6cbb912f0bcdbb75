// space: a write on a full set waits for recycling as long as recycling frees
// space, and answers ENOSPC at once when there is nothing left to recycle.
#include "fixture.hpp"

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
