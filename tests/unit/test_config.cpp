#include "admin/config.hpp"
#include "base/error.hpp"

#include <doctest/doctest.h>
#include <fstream>
#include <unistd.h>

using namespace nvrfs;

namespace {
// A config file with `text`, removed when the test ends.
struct TempConf {
    std::string path;
    explicit TempConf(const std::string& text) {
        char p[] = "/tmp/nvrfs-conf-XXXXXX";
        int fd = mkstemp(p);
        REQUIRE(fd >= 0);
        close(fd);
        path = p;
        std::ofstream(path) << text;
    }
    ~TempConf() { unlink(path.c_str()); }
};
}  // namespace

TEST_CASE("config file: lists, defaults, overrides") {
    TempConf f("# test\nmember = /srv/a\nmember=/srv/b  # second\nmin_free = 10%\nrecycle = yes\n");
    Config c;
    c.load_file(f.path);
    CHECK(c.list("member") == std::vector<std::string>{"/srv/a", "/srv/b"});
    CHECK(c.min_free().percent);
    CHECK(c.min_free().value == 10);
    CHECK(c.boolean("recycle"));
    CHECK(c.text("host_key") == "/etc/nvrfs/host.key");
    c.set("min-free", "2G");
    CHECK_FALSE(c.min_free().percent);
    CHECK(c.min_free().value == 2.0 * (1ull << 30));
    // A list holds a path once (member add of a failed member, listed already).
    c.set("member", "/srv/a");
    c.set("member", "/srv/c");
    CHECK(c.list("member") == std::vector<std::string>{"/srv/a", "/srv/b", "/srv/c"});
}

TEST_CASE("bad config is refused with file and line") {
    TempConf f("member = /srv/a\nnonsense = 1\n");
    Config c;
    try {
        c.load_file(f.path);
        FAIL("accepted an unknown key");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find(":2:") != std::string::npos);
        CHECK(std::string(e.what()).find("nonsense") != std::string::npos);
    }
    CHECK_THROWS_AS(c.set("min_free", "lots"), Error);
    CHECK_THROWS_AS(c.set("min_free", "120%"), Error);
    CHECK_THROWS_AS(c.set("member", "relative/path"), Error);
    CHECK_THROWS_AS(c.set("recycle", "maybe"), Error);
    CHECK_THROWS_AS(c.set("check_interval", "0"), Error);
    Config d;
    CHECK_THROWS_AS(d.load_file("/nonexistent/nvrfs.conf"), Error);
}

TEST_CASE("sizes") {
    CHECK(parse_size("512") == 512u);
    CHECK(parse_size("4K") == 4096u);
    CHECK(parse_size("1T") == (1ull << 40));
    CHECK_FALSE(parse_size("1X"));
    CHECK_FALSE(parse_size(""));
}
