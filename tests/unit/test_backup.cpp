#include "backup_archive.hpp"
#include "error.hpp"

#include "helpers.hpp"

#include <doctest/doctest.h>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>

using namespace nvrfs;

namespace {
using test::slurp;
struct Dir {
    std::string path;
    Dir() {
        char t[] = "/tmp/nvrfs-bak-XXXXXX";
        path = ::mkdtemp(t);
    }
    ~Dir() { std::system(("rm -rf " + path).c_str()); }
};
std::string make_archive(const Dir& d, std::map<std::string, std::string>& files) {
    std::mt19937 rng(5);
    for (int i = 0; i < 3; ++i) {
        std::string data(static_cast<size_t>(700000 * i + 5), '\0');
        for (auto& c : data) c = static_cast<char>(rng());
        const std::string name = "cam" + std::to_string(i) + "/seg.mp4";
        std::ofstream(d.path + "/src" + std::to_string(i), std::ios::binary) << data;
        files[name] = data;
    }
    const std::string a = d.path + "/b.nvrbak";
    BackupWriter w(a, "correct horse battery", kBackupMinIterations, {{"set", "test"}});
    for (int i = 0; i < 3; ++i) w.add_file(d.path + "/src" + std::to_string(i), "cam" + std::to_string(i) + "/seg.mp4");
    w.finish();
    return a;
}
}  // namespace

TEST_CASE("backup: create, verify and restore byte-identical") {
    Dir d;
    std::map<std::string, std::string> files;
    const std::string a = make_archive(d, files);
    CHECK(::access((a + ".partial").c_str(), F_OK) != 0);
    auto c = read_backup(a, "correct horse battery");
    CHECK(c.files.size() == 3);
    CHECK(c.manifest["set"] == "test");
    auto r = read_backup(a, "correct horse battery", d.path + "/out");
    for (auto& [name, data] : files) CHECK(slurp(d.path + "/out/" + name) == data);
    // Nothing of the plaintext is in the archive.
    CHECK(slurp(a).find("cam1/seg.mp4") == std::string::npos);
}

TEST_CASE("backup: wrong passphrase, flipped byte, truncation, incomplete") {
    Dir d;
    std::map<std::string, std::string> files;
    const std::string a = make_archive(d, files);
    try {
        read_backup(a, "wrong passphrase!");
        FAIL("accepted a wrong passphrase");
    } catch (const Error& e) {
        CHECK(e.code() == EKEYREJECTED);
        CHECK(std::string(e.what()).find("wrong passphrase") != std::string::npos);
    }
    std::string raw = slurp(a);
    std::string bad = raw;
    bad[bad.size() / 2] ^= 1;
    std::ofstream(d.path + "/flip.nvrbak", std::ios::binary) << bad;
    CHECK_THROWS_WITH_AS(read_backup(d.path + "/flip.nvrbak", "correct horse battery", d.path + "/o2"),
                         doctest::Contains("fails authentication"), Error);
    CHECK(::access((d.path + "/o2/cam0/seg.mp4").c_str(), F_OK) != 0);  // nothing half-restored
    std::ofstream(d.path + "/cut.nvrbak", std::ios::binary) << raw.substr(0, raw.size() - 100);
    CHECK_THROWS_WITH_AS(read_backup(d.path + "/cut.nvrbak", "correct horse battery"), doctest::Contains("truncated"), Error);
    // Whole records dropped from the end: the final record is missing.
    const size_t rec1 = 64 + 4 + ((uint8_t(raw[64]) << 24) | (uint8_t(raw[65]) << 16) | (uint8_t(raw[66]) << 8) | uint8_t(raw[67]));
    std::ofstream(d.path + "/short.nvrbak", std::ios::binary) << raw.substr(0, rec1);
    CHECK_THROWS_WITH_AS(read_backup(d.path + "/short.nvrbak", "correct horse battery"), doctest::Contains("final record"), Error);
    {
        BackupWriter w(d.path + "/x.nvrbak", "correct horse battery", kBackupMinIterations, {});
        w.add_file(d.path + "/src1", "a.mp4");
        CHECK(w.abandon() == d.path + "/x.nvrbak.incomplete");
    }
    CHECK_THROWS_AS(read_backup(d.path + "/x.nvrbak.incomplete", "correct horse battery"), Error);
    CHECK_THROWS_AS(BackupWriter(d.path + "/y.nvrbak", "short", kBackupMinIterations, {}), Error);
    CHECK_THROWS_AS(BackupWriter(d.path + "/y.nvrbak", "long enough pass", 1000, {}), Error);
}
