#include "transfer/backup_archive.hpp"
#include "base/crypto.hpp"
#include "base/error.hpp"

#include "helpers.hpp"
#include "../support/archive_forge.hpp"

#include <doctest/doctest.h>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <random>
#include <sstream>
#include <unistd.h>

using namespace nvrfs;

namespace {
using test::slurp;
bool tree_empty(const std::string& dir) { return std::filesystem::is_empty(dir); }
struct Dir : test::TempDir {
    Dir() : TempDir("nvrfs-bak") {}
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

namespace {

// An archive with whatever entries an attacker who knows the passphrase would put in it.
struct Forged {
    std::string stream;  // plaintext entry stream
    void file(const std::string& head_json, const std::string& data) { stream += test::archive_entry('F', head_json, data); }
    void put(char type, const std::string& json) { stream += test::archive_entry(type, json); }
    void write(const std::string& path, uint32_t iters = kBackupMinIterations) const {
        std::ofstream(path, std::ios::binary) << test::ArchiveForge("correct horse battery", iters, false).seal(stream);
    }
};

std::string manifest_for(const std::string& path, const std::string& data) {
    nlohmann::json m = {{"complete", true}, {"files", {{{"path", path}, {"size", data.size()}, {"sha256", hex(sha256(as_bytes(data)))}}}}};
    return m.dump();
}

int restore_error(const std::string& archive, const std::string& to) {
    return test::error_of([&] { read_backup(archive, "correct horse battery", to); });
}

}  // namespace

TEST_CASE("backup restore: never outside its target, never set-id, malformed archives are one clear error") {
    Dir d;
    const std::string outside = d.path + "/outside", to = d.path + "/to", a = d.path + "/x.nvrbak";
    ::mkdir(outside.c_str(), 0755);
    ::mkdir(to.c_str(), 0755);

    // A symlinked directory inside the target leads outside: refused, nothing written there.
    REQUIRE(::symlink(outside.c_str(), (to + "/cam1").c_str()) == 0);
    Forged f;
    f.file(R"({"path":"cam1/seg.mp4","size":4,"mtime":0,"mode":420})", "data");
    f.put('M', manifest_for("cam1/seg.mp4", "data"));
    f.write(a);
    CHECK(restore_error(a, to) == ELOOP);
    CHECK(tree_empty(outside));

    // A link at the final name is replaced, its target untouched; set-id bits dropped.
    ::unlink((to + "/cam1").c_str());
    ::mkdir((to + "/cam1").c_str(), 0755);
    std::ofstream(outside + "/victim") << "keep";
    REQUIRE(::symlink((outside + "/victim").c_str(), (to + "/cam1/seg.mp4").c_str()) == 0);
    Forged g;
    g.file(R"({"path":"cam1/seg.mp4","size":4,"mtime":0,"mode":4095})", "data");  // 07777
    g.put('M', manifest_for("cam1/seg.mp4", "data"));
    g.write(a);
    CHECK(restore_error(a, to) == 0);
    CHECK(slurp(outside + "/victim") == "keep");
    struct stat st {};
    REQUIRE(::lstat((to + "/cam1/seg.mp4").c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK((st.st_mode & 07777) == 0777);
    CHECK(slurp(to + "/cam1/seg.mp4") == "data");

    // Malformed entries: wrong JSON types, a manifest that is an array. One
    // error, EBADMSG, and no temporary left behind.
    for (const std::string& head : {std::string(R"({"path":1,"size":4,"mtime":0,"mode":420})"),
                                    std::string(R"({"path":"a.mp4","size":"4","mtime":0,"mode":420})"),
                                    std::string(R"({"path":"a.mp4","size":4,"mtime":0,"mode":-1})"), std::string(R"([1,2])")}) {
        Forged h;
        h.file(head, "data");
        h.put('M', manifest_for("a.mp4", "data"));
        h.write(a);
        CHECK(restore_error(a, to) == EBADMSG);
    }
    Forged m;
    m.file(R"({"path":"b.mp4","size":4,"mtime":0,"mode":420})", "data");
    m.put('M', "[]");
    m.write(a);
    CHECK(restore_error(a, to) == EBADMSG);
    CHECK(::access((to + "/b.mp4").c_str(), F_OK) != 0);
    for (const auto& e : std::filesystem::recursive_directory_iterator(to))
        CHECK(e.path().filename().string().find(".nvrfs-restore") == std::string::npos);

    // An iteration count beyond the bound is refused before any PBKDF2 work.
    Forged big;
    big.put('M', manifest_for("c.mp4", ""));
    big.write(a, kBackupMinIterations);
    std::string raw = slurp(a);
    raw[8] = '\x7f', raw[9] = raw[10] = raw[11] = '\xff';
    std::ofstream(a, std::ios::binary) << raw;
    CHECK(restore_error(a, "") == EINVAL);
}
