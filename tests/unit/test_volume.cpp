// Volume tests without FUSE: the full data path on temporary member directories.
#include "base/big_endian.hpp"
#include "base/error.hpp"
#include "store/chunk_crypto.hpp"
#include "store/tree.hpp"
#include "store/volume.hpp"

#include <dirent.h>
#include "fixture.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace nvrfs;

namespace {

using namespace nvrfs::test;


}  // namespace

namespace {
// Random writes, holes, truncates and reads of one file of format `version`
// against a string; then the copies, a remount and the stored bytes.
void model_test(uint16_t version) {
    Fixture fx;
    fx.vol->set_new_file_version(version);
    std::mt19937_64 rng(12345);
    std::string model;
    auto h = fx.vol->create("/clip.mp4", 0644, O_CREAT | O_RDWR, fx.who);
    for (int step = 0; step < 300; ++step) {
        const int op = static_cast<int>(rng() % 10);
        if (op < 6) {
            const uint64_t off = rng() % (model.size() + 200000);
            // Every fifth write spans several 4-chunk pieces sealed on different threads.
            const size_t len = static_cast<size_t>(rng() % (step % 5 == 0 ? 1200000 : 150000)) + 1;
            const std::string d = make_data(rng, len);
            fx.vol->write(*h, reinterpret_cast<const uint8_t*>(d.data()), len, off);
            if (model.size() < off + len) model.resize(off + len, '\0');
            model.replace(off, len, d);
        } else if (op < 7) {
            const uint64_t ns = rng() % (model.size() + 100000);
            fx.vol->truncate("/clip.mp4", ns, h.get(), fx.who);
            model.resize(ns, '\0');
        } else {
            const uint64_t off = model.empty() ? 0 : rng() % model.size();
            const size_t len = static_cast<size_t>(rng() % 200000);
            std::string got(len, '\0');
            const size_t n = fx.vol->read(*h, reinterpret_cast<uint8_t*>(got.data()), len, off);
            got.resize(n);
            CHECK(got == model.substr(off, len));
        }
        REQUIRE(h->file->size.load() == model.size());
    }
    fx.vol->release(std::move(h));
    CHECK(fx.read_file("/clip.mp4") == model);
    CHECK(static_cast<uint64_t>(fx.vol->getattr("/clip.mp4", nullptr).st_size) == model.size());
    // The mirror holds identical stored bytes.
    CHECK(tree_of(fx.members[0]) == tree_of(fx.members[1]));
    // And it survives a remount.
    fx.unmount();
    fx.mount();
    CHECK(fx.read_file("/clip.mp4") == model);
    CHECK(FileHeader::decode(as_bytes(slurp(fx.stored_file(0)).substr(0, kHeaderSize)))->version == version);
}
}  // namespace

TEST_CASE("random writes, holes, truncates and reads match a reference model") { model_test(kFormatVersion); }
TEST_CASE("the same for a version 1 file (written before version 2): read and changed as version 1") { model_test(kFormatV1); }

TEST_CASE("names and contents are not visible on the members") {
    Fixture fx;
    const std::string marker = "NVRFS-PLAINTEXT-MARKER-0123456789";
    fx.vol->mkdir("/camera-front-door", 0755, fx.who);
    fx.write_file("/camera-front-door/secret-recording.mp4", std::string(100, 'a') + marker + std::string(70000, 'b'));
    for (auto& m : fx.members)
        for (auto& [rel, data] : tree_of(m)) {
            CHECK(rel.find("camera") == std::string::npos);
            CHECK(rel.find("secret") == std::string::npos);
            CHECK(data.find(marker) == std::string::npos);
            CHECK(data.find("secret-recording") == std::string::npos);
        }
    CHECK(fx.vol->readdir("/") == std::vector<std::string>{"camera-front-door"});
    CHECK(fx.vol->readdir("/camera-front-door") == std::vector<std::string>{"secret-recording.mp4"});
}

TEST_CASE("a flipped byte on one member is repaired from the other and alerted") {
    Fixture fx;
    std::mt19937_64 rng(7);
    const std::string data = fx.write_file("/a.mp4", make_data(rng, 300000));
    flip(fx.stored_file(0), static_cast<off_t>(stored_offset(2) + 100));
    CHECK(fx.read_file("/a.mp4") == data);
    CHECK(slurp(fx.stored_file(0)) == slurp(fx.stored_file(1)));
    CHECK(fx.alerted(alert::TamperDetected, "repaired"));
}

TEST_CASE("swapped chunks and a truncated copy on one member are repaired") {
    Fixture fx;
    std::mt19937_64 rng(8);
    const std::string data = fx.write_file("/a.mp4", make_data(rng, 5 * kChunkSize + 10));
    std::string s = slurp(fx.stored_file(0));
    const std::string c1 = s.substr(stored_offset(1), kStoredChunk), c2 = s.substr(stored_offset(2), kStoredChunk);
    s.replace(stored_offset(1), kStoredChunk, c2);
    s.replace(stored_offset(2), kStoredChunk, c1);
    std::ofstream(fx.stored_file(0), std::ios::binary) << s;
    CHECK(fx.read_file("/a.mp4") == data);
    CHECK(slurp(fx.stored_file(0)) == slurp(fx.stored_file(1)));

    REQUIRE(::truncate(fx.stored_file(1).c_str(), static_cast<off_t>(stored_offset(2))) == 0);
    CHECK(fx.read_file("/a.mp4") == data);
    CHECK(slurp(fx.stored_file(0)) == slurp(fx.stored_file(1)));
}

TEST_CASE("damage on every member gives EIO, never forged bytes") {
    Fixture fx;
    std::mt19937_64 rng(9);
    fx.write_file("/a.mp4", make_data(rng, 200000));
    flip(fx.stored_file(0), static_cast<off_t>(stored_offset(1) + 5));
    flip(fx.stored_file(1), static_cast<off_t>(stored_offset(1) + 5));
    try {
        fx.read_file("/a.mp4");
        FAIL("read returned data from a forged chunk");
    } catch (const Error& e) {
        CHECK(e.code() == EIO);
    }
    CHECK(fx.alerted(alert::TamperDetected, "not authentic"));
}

TEST_CASE("truncation at a chunk boundary on every member is detected") {
    Fixture fx;
    std::mt19937_64 rng(10);
    fx.write_file("/a.mp4", make_data(rng, 3 * kChunkSize + 100));
    for (size_t i = 0; i < 2; ++i) REQUIRE(::truncate(fx.stored_file(i).c_str(), static_cast<off_t>(stored_offset(2))) == 0);
    CHECK(fx.vol->getattr("/a.mp4", nullptr).st_size == static_cast<off_t>(2 * kChunkSize));
    CHECK_THROWS_AS(fx.read_file("/a.mp4"), Error);
    // Cut down to the header alone, or to a header and a chunk's overhead:
    // no authentic chunk at all, so it is no empty file but a tampered one.
    for (off_t cut : {off_t(kHeaderSize), off_t(kHeaderSize + kChunkOverhead)}) {
        for (size_t i = 0; i < 2; ++i) REQUIRE(::truncate(fx.stored_file(i).c_str(), cut) == 0);
        try {
            fx.vol->getattr("/a.mp4", nullptr);
            FAIL("a file cut to " << cut << " stored bytes passed as empty");
        } catch (const Error& e) {
            CHECK(e.code() == EIO);
        }
        CHECK_THROWS_AS(fx.read_file("/a.mp4"), Error);
    }
    CHECK(fx.alerted(alert::TamperDetected, "not authentic on any member"));
    // A real empty file still opens.
    fx.write_file("/empty.mp4", "");
    CHECK(fx.read_file("/empty.mp4").empty());
}

TEST_CASE("the wrong host key and a foreign member are refused") {
    Fixture fx;
    fx.unmount();
    try {
        MirrorSet::assemble(fx.members, SecretKey::random(32), {}, nullptr);
        FAIL("assembled with another host key");
    } catch (const Error& e) {
        CHECK(e.code() == EKEYREJECTED);
        CHECK(std::string(e.what()).find("different host key") != std::string::npos);
    }
    const std::string other = fx.root + "/other";
    create_set({other + "1", other + "2"}, fx.host);
    try {
        MirrorSet::assemble({fx.members[0], other + "1"}, fx.host, {}, nullptr);
        FAIL("mixed two sets");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("refusing to mix sets") != std::string::npos);
    }
    CHECK_THROWS_AS(MirrorSet::assemble({fx.members[0], fx.root}, fx.host, {}, nullptr), Error);  // not a member
    fx.mount();
}

TEST_CASE("a failed member is stale at the next assembly and resynced, not trusted") {
    Fixture fx;
    std::mt19937_64 rng(11);
    const std::string a = fx.write_file("/a.mp4", make_data(rng, 100000));
    fx.set->fail(1, EIO, "test");
    CHECK(fx.set->healthy_count() == 1);
    const std::string b = fx.write_file("/b.mp4", make_data(rng, 100000));
    fx.unmount();
    fx.mount();
    bool resynced = false;
    for (auto& n : fx.notes) resynced |= n.find("MemberResynced") != std::string::npos;
    CHECK(resynced);
    CHECK(fx.set->member(1).state.load() == MemberState::Rebuilding);
    fx.rebuild();
    CHECK(fx.set->member(1).state.load() == MemberState::Active);
    CHECK(tree_of(fx.members[0]) == tree_of(fx.members[1]));
    CHECK(fx.read_file("/b.mp4") == b);
}

TEST_CASE("a stale member's longer copies do not set the length of a file cut while it was away") {
    // A playlist rewritten with O_TRUNC, a recording cut by a truncate, a name
    // deleted and created again smaller: the member that missed those holds
    // longer copies, or another file's bytes. The length comes from the
    // members that are complete and nothing of another file is kept, so the
    // resync copies them as they are: no false tamper alert, no bad copy
    // left behind a "clean" rebuild.
    Fixture fx;
    std::mt19937_64 rng(13);
    fx.write_file("/cut.mp4", make_data(rng, 300000));
    fx.write_file("/list.m3u8", make_data(rng, 200000));
    fx.write_file("/again.mp4", make_data(rng, 250000));
    fx.set->fail(1, ENOSPC, "test");
    fx.vol->truncate("/cut.mp4", 70000, nullptr, fx.who);
    const std::string list = fx.write_file("/list.m3u8", make_data(rng, 1000));
    fx.vol->unlink("/again.mp4", fx.who);
    // Created again with a hole where the old copy has data: the hole's
    // stored form (its two ends) must not keep the old bytes between them.
    fx.write_file("/again.mp4", "");
    fx.vol->truncate("/again.mp4", 150000, nullptr, fx.who);
    const std::string again = fx.read_file("/again.mp4");
    const std::string cut = fx.read_file("/cut.mp4");
    fx.unmount();
    fx.mount();
    fx.rebuild();
    CHECK(fx.set->member(1).state.load() == MemberState::Active);
    CHECK_FALSE(fx.alerted(alert::TamperDetected, ""));
    CHECK(tree_of(fx.members[0]) == tree_of(fx.members[1]));
    CHECK(fx.read_file("/cut.mp4") == cut);
    CHECK(fx.read_file("/list.m3u8") == list);
    CHECK(fx.read_file("/again.mp4") == again);
    CHECK_FALSE(fx.alerted(alert::MemberInconsistent, ""));
}

TEST_CASE("a member the administrator failed stays failed at the next assembly, until it is added back") {
    Fixture fx;
    std::mt19937_64 rng(12);
    const std::string a = fx.write_file("/a.mp4", make_data(rng, 100000));
    fx.set->fail_by_admin(1, "test");
    const std::string b = fx.write_file("/b.mp4", make_data(rng, 100000));
    fx.unmount();
    fx.mount();
    bool said = false, resynced = false;
    for (auto& n : fx.notes) {
        said |= n.rfind("MemberFailed:", 0) == 0;
        resynced |= n.find("MemberResynced") != std::string::npos;
    }
    CHECK(said);
    CHECK_FALSE(resynced);
    CHECK(fx.set->member(1).state.load() == MemberState::Failed);
    CHECK(fx.set->healthy_count() == 1);
    CHECK(fx.read_file("/b.mp4") == b);
    // Added back as nvrfsd does for nvrctl member add: rebuilt from the
    // start, and no longer marked on its disk.
    fx.set->remove_member(1);
    const size_t i = fx.set->add_member(fx.members[1], MemberState::Spare);
    fx.rebuild(i);
    CHECK(fx.set->member(i).state.load() == MemberState::Active);
    CHECK(tree_of(fx.members[0]) == tree_of(fx.members[1]));
    fx.unmount();
    fx.mount();
    CHECK(fx.set->healthy_count() == 2);
    CHECK(fx.read_file("/a.mp4") == a);
}

TEST_CASE("audit log: every write session once; edits, deletions and reordering are detected") {
    Fixture fx;
    fx.write_file("/a.mp4", std::string(1000, 'x'));
    fx.vol->rename("/a.mp4", "/b.mp4", 0, fx.who);
    fx.vol->unlink("/b.mp4", fx.who);
    VerifyResult v;
    auto recs = fx.records(0, &v);
    CHECK(v.ok);
    std::vector<std::string> events;
    for (auto& r : recs) events.push_back(r["event"]);
    CHECK(events == std::vector<std::string>{"create", "write", "rename", "unlink"});
    CHECK(recs[1]["bytes"] == 1000);
    CHECK(recs[1]["result"] == "ok");
    CHECK(recs[1]["user"] == "root");
    CHECK(recs[1]["time"].get<std::string>().size() == std::string("2026-11-25T21:29:07.123+00:00").size());

    const std::string path = fx.members[0] + "/" + kAuditLogPath;
    const std::string orig = slurp(path);
    // Edit one byte inside record 2.
    const size_t len1 = 8 + ((uint8_t(orig[0]) << 24) | (uint8_t(orig[1]) << 16) | (uint8_t(orig[2]) << 8) | uint8_t(orig[3]));
    std::string edited = orig;
    edited[len1 + 30] ^= 1;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << edited;
    fx.records(0, &v);
    CHECK_FALSE(v.ok);
    CHECK(v.first_bad == 2);
    // Delete record 2.
    const std::string r2 = orig.substr(len1, 8 + ((uint8_t(orig[len1]) << 24) | (uint8_t(orig[len1 + 1]) << 16) |
                                                    (uint8_t(orig[len1 + 2]) << 8) | uint8_t(orig[len1 + 3])));
    std::string deleted = orig;
    deleted.erase(len1, r2.size());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << deleted;
    fx.records(0, &v);
    CHECK_FALSE(v.ok);
    CHECK(v.first_bad == 2);
    CHECK(v.message.find("deleted or reordered") != std::string::npos);
    // Swap records 1 and 2.
    std::string swapped = r2 + orig.substr(0, len1) + orig.substr(len1 + r2.size());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << swapped;
    fx.records(0, &v);
    CHECK_FALSE(v.ok);
    CHECK(v.first_bad == 1);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << orig;
}

TEST_CASE("version 1: a crash between appending and resealing the old last chunk leaves a readable file") {
    Fixture fx;
    fx.vol->set_new_file_version(kFormatV1);
    std::mt19937_64 rng(12);
    const std::string data = fx.write_file("/a.mp4", make_data(rng, 2 * kChunkSize));
    // Re-create the crash state: chunk 0 sealed as last although chunk 1 follows.
    auto h = fx.vol->open("/a.mp4", O_RDONLY, fx.who);
    Bytes s(kStoredChunk);
    seal_chunk(h->file->key, h->file->hdr, 0, true, ByteView(reinterpret_cast<const uint8_t*>(data.data()), kChunkSize), s.data());
    fx.vol->release(std::move(h));
    for (size_t i = 0; i < 2; ++i) {
        int fd = ::open(fx.stored_file(i).c_str(), O_WRONLY);
        REQUIRE(::pwrite(fd, s.data(), s.size(), static_cast<off_t>(stored_offset(0))) == static_cast<ssize_t>(s.size()));
        ::close(fd);
    }
    CHECK(fx.read_file("/a.mp4") == data);
    // The chunk that ends the file must still authenticate as last.
    flip(fx.stored_file(0), static_cast<off_t>(stored_offset(1) + 20));
    flip(fx.stored_file(1), static_cast<off_t>(stored_offset(1) + 20));
    CHECK_THROWS_AS(fx.read_file("/a.mp4"), Error);
}

TEST_CASE("version 2: a file ending on a chunk boundary ends in an empty chunk that proves its end") {
    Fixture fx;
    std::mt19937_64 rng(21);
    // Appends of half a chunk, as a camera writes: each full chunk is sealed
    // once as it fills and never again; the file ends in a partial or empty chunk.
    const std::string data = make_data(rng, 4 * kChunkSize);
    auto h = fx.vol->create("/a.mp4", 0644, O_CREAT | O_WRONLY, fx.who);
    for (uint64_t off = 0; off < data.size(); off += kChunkSize / 2) {
        fx.vol->write(*h, reinterpret_cast<const uint8_t*>(data.data() + off), kChunkSize / 2, off);
        struct stat st {};
        REQUIRE(::stat(fx.stored_file(0).c_str(), &st) == 0);
        CHECK(static_cast<uint64_t>(st.st_size) == stored_size(kFormatVersion, off + kChunkSize / 2));
    }
    fx.vol->release(std::move(h));
    CHECK(fx.read_file("/a.mp4") == data);
    // A middle chunk sealed as last never comes from a version 2 writer: refused.
    h = fx.vol->open("/a.mp4", O_RDONLY, fx.who);
    const SecretKey key = h->file->key;
    const FileHeader hdr = h->file->hdr;
    fx.vol->release(std::move(h));
    const std::string orig = slurp(fx.stored_file(0));
    Bytes s(kStoredChunk);
    seal_chunk(key, hdr, 1, true, ByteView(reinterpret_cast<const uint8_t*>(data.data()) + kChunkSize, kChunkSize), s.data());
    for (size_t i = 0; i < 2; ++i) {
        int fd = ::open(fx.stored_file(i).c_str(), O_WRONLY);
        REQUIRE(::pwrite(fd, s.data(), s.size(), static_cast<off_t>(stored_offset(1))) == static_cast<ssize_t>(s.size()));
        ::close(fd);
    }
    CHECK_THROWS_AS(fx.read_file("/a.mp4"), Error);
    for (size_t i = 0; i < 2; ++i) std::ofstream(fx.stored_file(i), std::ios::binary | std::ios::trunc) << orig;
    CHECK(fx.read_file("/a.mp4") == data);
    // Cut at the boundary on every member: the empty chunk is gone, and a
    // read to the end (which holds no byte of it) still fails.
    for (size_t i = 0; i < 2; ++i) REQUIRE(::truncate(fx.stored_file(i).c_str(), static_cast<off_t>(stored_offset(4))) == 0);
    CHECK_THROWS_AS(fx.read_file("/a.mp4"), Error);
    for (size_t i = 0; i < 2; ++i) REQUIRE(::truncate(fx.stored_file(i).c_str(), static_cast<off_t>(stored_offset(3))) == 0);
    CHECK_THROWS_AS(fx.read_file("/a.mp4"), Error);
}

TEST_CASE("a version 1 file is appended as version 1 and starts again as version 2 when truncated to zero") {
    Fixture fx;
    fx.vol->set_new_file_version(kFormatV1);
    std::mt19937_64 rng(22);
    std::string data = fx.write_file("/a.mp4", make_data(rng, 2 * kChunkSize));
    fx.unmount();
    fx.mount();  // a build that writes version 2
    auto version = [&] { return FileHeader::decode(as_bytes(slurp(fx.stored_file(0)).substr(0, kHeaderSize)))->version; };
    auto stored = [&] {
        struct stat st {};
        REQUIRE(::stat(fx.stored_file(0).c_str(), &st) == 0);
        return static_cast<uint64_t>(st.st_size);
    };
    CHECK(version() == kFormatV1);
    CHECK(stored() == stored_size(kFormatV1, data.size()));
    CHECK(fx.read_file("/a.mp4") == data);
    const std::string more = make_data(rng, 100);
    auto h = fx.vol->open("/a.mp4", O_WRONLY, fx.who);
    fx.vol->write(*h, reinterpret_cast<const uint8_t*>(more.data()), more.size(), data.size());
    fx.vol->release(std::move(h));
    data += more;
    CHECK(version() == kFormatV1);
    CHECK(fx.read_file("/a.mp4") == data);
    fx.vol->truncate("/a.mp4", 2 * kChunkSize, nullptr, fx.who);
    CHECK(stored() == stored_size(kFormatV1, 2 * kChunkSize));
    CHECK(fx.read_file("/a.mp4") == data.substr(0, 2 * kChunkSize));
    data = fx.write_file("/a.mp4", make_data(rng, 2 * kChunkSize));  // O_TRUNC
    CHECK(version() == kFormatVersion);
    CHECK(stored() == stored_size(kFormatVersion, data.size()));
    fx.unmount();
    fx.mount();
    CHECK(fx.read_file("/a.mp4") == data);
    CHECK(tree_of(fx.members[0]) == tree_of(fx.members[1]));
}

// Where an audit log's last frame starts: its trailing length says how long it is.
static size_t last_frame_at(const std::string& log) {
    return log.size() - 8 - get32(reinterpret_cast<const uint8_t*>(log.data() + log.size() - 4));
}

TEST_CASE("an audit log left a record short by a crash is completed from the other member") {
    Fixture fx;
    fx.write_file("/a.mp4", "x");
    fx.unmount();
    const std::string p0 = fx.members[0] + "/" + kAuditLogPath, p1 = fx.members[1] + "/" + kAuditLogPath;
    std::string log = slurp(p1);
    REQUIRE(::truncate(p1.c_str(), static_cast<off_t>(last_frame_at(log))) == 0);  // the crash: m2 missed the last append
    fx.mount();
    bool noted = false;
    for (auto& n : fx.notes) noted |= n.find("AuditLogRecovered") != std::string::npos;
    CHECK(noted);
    fx.write_file("/b.mp4", "y");
    VerifyResult v0, v1;
    fx.records(0, &v0);
    fx.records(1, &v1);
    CHECK(v0.ok);
    CHECK(v1.ok);
    CHECK(slurp(p0) == slurp(p1));
}

TEST_CASE("a log tail of zeros (the size reached the disk, the bytes did not) is torn, not forged") {
    // ext4 after an I/O error or a power cut can keep a grown size and lose
    // the data: the last records read as zeros up to a block boundary. That
    // is a crash, cut and completed from the other member; bytes that are
    // not zeros are still a forgery. (A cut log is the host anchor's to catch.)
    Fixture fx;
    fx.write_file("/a.mp4", "x");
    fx.unmount();
    const std::string p1 = fx.members[1] + "/" + kAuditLogPath;
    const std::string log = slurp(p1);
    const size_t cut = last_frame_at(log);
    std::string zeroed = log.substr(0, cut) + std::string(log.size() - cut + 700, '\0');
    std::ofstream(p1, std::ios::binary | std::ios::trunc) << zeroed;
    fx.mount();
    bool torn = false, forged = false;
    for (auto& n : fx.notes) {
        torn |= n.find("AuditLogRecovered") != std::string::npos && n.find("cut a torn record") != std::string::npos;
        forged |= n.find("TamperDetected") != std::string::npos;
    }
    CHECK(torn);
    CHECK_FALSE(forged);
    CHECK(slurp(p1) == slurp(fx.members[0] + "/" + kAuditLogPath));
    fx.unmount();
    std::string garbage = log.substr(0, cut) + std::string(log.size() - cut, '\0');
    garbage[cut + 40] = 1;  // one byte that no crash writes
    std::ofstream(p1, std::ios::binary | std::ios::trunc) << garbage;
    fx.mount();
    forged = false;
    for (auto& n : fx.notes) forged |= n.find("TamperDetected") != std::string::npos && n.find("fails authentication") != std::string::npos;
    CHECK(forged);
}

TEST_CASE("an audit log longer than the reader's window: every record read, an edit past the window found") {
    // The log is read 256 KiB at a time; records straddle the window's edges.
    Fixture fx;
    for (int i = 0; i < 1000; ++i) fx.write_file(fmt::format("/seg{:04}.ts", i), "x");
    VerifyResult v;
    const auto recs = fx.records(0, &v);
    REQUIRE(v.ok);
    CHECK(v.records == recs.size());
    CHECK(recs.back()["path"] == "/seg0999.ts");
    const std::string path = fx.members[0] + "/" + kAuditLogPath;
    const std::string orig = slurp(path);
    REQUIRE(orig.size() > 2 * 256 * 1024);
    // The record holding the byte just past the first window, and one in the third.
    for (const size_t at : {size_t(256 * 1024 + 5), size_t(600 * 1024)}) {
        size_t off = 0, index = 0;
        for (;; ++index) {
            const size_t end = off + 8 + get32(reinterpret_cast<const uint8_t*>(orig.data() + off));
            if (at < end) break;
            off = end;
        }
        std::string edited = orig;
        edited[at] ^= 1;
        std::ofstream(path, std::ios::binary | std::ios::trunc) << edited;
        fx.records(0, &v);
        CHECK_FALSE(v.ok);
        CHECK(v.first_bad == index + 1);
        CHECK(v.records == index);
    }
    std::ofstream(path, std::ios::binary | std::ios::trunc) << orig;
    fx.records(0, &v);
    CHECK(v.ok);
}

TEST_CASE("reads of one file stay on one member; open files are spread over the members") {
    Fixture fx;
    std::mt19937_64 rng(21);
    const std::string a = fx.write_file("/a.mp4", make_data(rng, 3000000));
    const std::string a_on_first = fx.stored_file(0);  // the only file yet
    const std::string b = fx.write_file("/b.mp4", make_data(rng, 3000000));
    auto read_all = [&](Handle& h, std::string& out) {
        out.assign(3000000, '\0');
        for (uint64_t off = 0; off < out.size(); off += 131072)  // as readahead would ask
            fx.vol->read(h, reinterpret_cast<uint8_t*>(out.data()) + off, std::min<size_t>(131072, out.size() - off), off);
    };
    auto ha = fx.vol->open("/a.mp4", O_RDONLY, fx.who);
    std::string got;
    read_all(*ha, got);
    CHECK(got == a);
    CHECK(fx.set->member(0).read_files.load() == 1);  // the first member on a tie
    CHECK(fx.set->member(1).read_files.load() == 0);
    auto hb = fx.vol->open("/b.mp4", O_RDONLY, fx.who);
    read_all(*hb, got);
    CHECK(got == b);
    CHECK(fx.set->member(0).read_files.load() == 1);  // a second file goes to the less busy member
    CHECK(fx.set->member(1).read_files.load() == 1);
    // A bad copy on the member that serves a.mp4 is still repaired from the other.
    flip(a_on_first, static_cast<off_t>(stored_offset(20) + 7));
    read_all(*ha, got);
    CHECK(got == a);
    fx.vol->release(std::move(ha));
    fx.vol->release(std::move(hb));
    CHECK(fx.set->member(0).read_files.load() == 0);
    CHECK(fx.set->member(1).read_files.load() == 0);
}

TEST_CASE("space reserved ahead of small appends is given back at close, times kept") {
    Fixture fx;
    std::mt19937_64 rng(31);
    auto h = fx.vol->create("/cam.mp4", 0644, O_CREAT | O_WRONLY, fx.who);
    std::string all;
    for (int i = 0; i < 40; ++i) {  // 1.25 MiB in a camera's 32 KiB writes
        const std::string d = make_data(rng, 32768);
        fx.vol->write(*h, reinterpret_cast<const uint8_t*>(d.data()), d.size(), all.size());
        all += d;
    }
    struct stat mid {};
    REQUIRE(::stat(fx.stored_file(0).c_str(), &mid) == 0);
    CHECK(mid.st_blocks * 512 > mid.st_size + (1 << 20));  // reserved ahead while writing
    const struct timespec ts[2] = {{1700000000, 0}, {1700000000, 0}};  // as cp -p sets them before close
    fx.vol->utimens("/cam.mp4", ts);
    fx.vol->release(std::move(h));
    for (size_t m = 0; m < 2; ++m) {
        struct stat st {};
        REQUIRE(::stat(fx.stored_file(m).c_str(), &st) == 0);
        CHECK(st.st_size == static_cast<off_t>(stored_size(kFormatVersion, all.size())));
        CHECK(st.st_blocks * 512 < st.st_size + 65536);  // nothing left reserved past the end
        CHECK(st.st_mtim.tv_sec == 1700000000);
    }
    CHECK(fx.read_file("/cam.mp4") == all);
}

TEST_CASE("a name with no stored byte (a create that never completed) is listed, removable, and removed by scrub --repair") {
    Fixture fx;
    fx.write_file("/cam1.mp4", "recorded");
    for (size_t i = 0; i < 2; ++i) REQUIRE(::truncate(fx.stored_file(i).c_str(), 0) == 0);
    CHECK(fx.vol->getattr("/cam1.mp4", nullptr).st_size == 0);
    try {
        fx.read_file("/cam1.mp4");
        FAIL("an incomplete file opened");
    } catch (const Error& e) {
        CHECK(e.code() == EIO);
        CHECK(std::string(e.what()).find("incomplete") != std::string::npos);
    }
    CHECK_FALSE(fx.alerted(alert::TamperDetected, "cam1"));  // not tamper: a create cut short
    Volume::ScrubStats report, fix;
    fx.vol->scrub_file("/cam1.mp4", false, report);
    CHECK(report.bad == 1);
    CHECK(report.unrepairable == 1);
    fx.vol->scrub_file("/cam1.mp4", true, fix);
    CHECK(fix.repaired == 1);
    CHECK_THROWS_AS(fx.vol->getattr("/cam1.mp4", nullptr), Error);
    bool audited = false;
    for (auto& r : fx.records(0)) audited |= r.value("event", "") == "unlink" && r.value("reason", "").find("incomplete") != std::string::npos;
    CHECK(audited);
}
