// The namespace ledger (issue 12): the audit log replayed into path -> file.
#include "fixture.hpp"
#include "audit/ledger.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace nvrfs;
using nlohmann::json;

namespace {
uint64_t seq = 0;
json rec(const std::string& ev, const std::string& path, json extra = json::object()) {
    json r = {{"event", ev}, {"path", path}, {"result", "ok"}, {"seq", ++seq}};
    for (auto& [k, v] : extra.items()) r[k] = v;
    return r;
}
}  // namespace

TEST_CASE("the ledger follows creates, closes, renames (files and directories), exchanges and unlinks") {
    Ledger l;
    l.apply(rec("create", "/cam1/a.mp4", {{"id", "aa"}}));
    l.apply(rec("write", "/cam1/a.mp4", {{"id", "aa"}, {"size", 100}, {"tail", "t1"}}));
    l.apply(rec("create", "/cam1/b.mp4", {{"id", "bb"}}));
    l.apply(rec("create", "/cam2/c.mp4", {{"id", "cc"}}));
    l.apply(rec("create", "/x", {{"id", "xx"}}));
    l.apply(rec("unlink", "/x", json::object()));
    l.apply(rec("create", "/failed", {{"id", "ff"}}));
    auto bad = rec("create", "/nope", {{"id", "nn"}});
    bad["result"] = "ENOSPC";
    l.apply(bad);
    auto full = rec("write", "/failed", {{"id", "ff"}, {"size", 7}, {"tail", "tf"}});
    full["result"] = "ENOSPC";  // a session that met a full disk still closed at this size
    l.apply(full);
    CHECK(l.files().at("/failed").closed);
    CHECK(l.files().at("/failed").size == 7);
    CHECK(l.files().size() == 4);
    CHECK(l.files().at("/cam1/a.mp4").closed);
    CHECK_FALSE(l.files().count("/x"));
    CHECK_FALSE(l.files().count("/nope"));

    l.apply(rec("rename", "/cam1", {{"to", "/old/cam1"}}));  // a directory: everything below moves
    CHECK(l.files().count("/old/cam1/a.mp4"));
    CHECK(l.files().count("/old/cam1/b.mp4"));
    CHECK_FALSE(l.files().count("/cam1/a.mp4"));
    l.apply(rec("rename", "/old/cam1/a.mp4", {{"to", "/old/cam1/b.mp4"}}));  // over a file: it is replaced
    CHECK(l.files().at("/old/cam1/b.mp4").id == "aa");
    l.apply(rec("rename", "/old/cam1/b.mp4", {{"to", "/cam2/c.mp4"}, {"exchange", true}}));
    CHECK(l.files().at("/cam2/c.mp4").id == "aa");
    CHECK(l.files().at("/old/cam1/b.mp4").id == "cc");
    l.apply(rec("unlink", "/cam2/c.mp4", {{"kept_open_as", "/cam2/.fuse_hidden1"}}));  // unlinked while open
    CHECK(l.files().count("/cam2/.fuse_hidden1"));
    l.apply(rec("unlink", "/cam2/.fuse_hidden1", json::object()));
    CHECK(l.files().size() == 2);  // /old/cam1/b.mp4 and /failed
}

TEST_CASE("comparing a file with its ledger entry") {
    LedgerEntry e{"aa", true, 100, "t1", 5};
    CHECK(compare(e, "aa", 100, "t1", false) == LedgerVerdict::Match);
    CHECK(compare(e, "bb", 100, "t1", false) == LedgerVerdict::Swapped);
    CHECK(compare(e, "aa", 80, "t0", false) == LedgerVerdict::Rewound);   // an older copy of itself
    CHECK(compare(e, "aa", 100, "t9", false) == LedgerVerdict::Rewound);  // same size, another tail
    CHECK(compare(e, "aa", 150, "t2", false) == LedgerVerdict::Rewound);  // grew with no record: not after a clean stop
    CHECK(compare(e, "aa", 150, "t2", true) == LedgerVerdict::Unchecked); // ... but maybe after a crash
    CHECK(compare(e, "aa", 80, "t0", true) == LedgerVerdict::Rewound);    // shorter is never a crash
    LedgerEntry legacy{"", false, 0, "", 1};
    CHECK(compare(legacy, "zz", 1, "q", false) == LedgerVerdict::Unchecked);
    LedgerEntry open_only{"aa", false, 0, "", 1};
    CHECK(compare(open_only, "aa", 42, "q", false) == LedgerVerdict::Match);
}

TEST_CASE("a live ledger: the log replayed once, then every append followed; open() holds each file to it") {
    test::Fixture f;
    f.write_file("/a.mp4", "first");
    f.write_file("/b.mp4", "second!");
    LiveLedger live;
    const auto vr = f.log->follow([&](const json& r, uint64_t end) { live.apply(r, end); });
    CHECK(vr.ok);
    CHECK(vr.records == f.log->last_seq());
    REQUIRE(live.find("/a.mp4"));
    CHECK(live.find("/a.mp4")->size == 5);
    f.write_file("/c.mp4", "third");  // appended after follow(): followed
    REQUIRE(live.find("/c.mp4"));
    CHECK(live.find("/c.mp4")->closed);
    f.vol->rename("/c.mp4", "/d.mp4", 0, f.who);
    CHECK_FALSE(live.find("/c.mp4"));
    CHECK(live.find("/d.mp4"));

    int asked = 0;
    f.vol->set_place_check([&](const std::string& p, const Volume::Facts& now, bool settled) -> std::optional<std::string> {
        ++asked;
        const auto e = live.find(p);
        if (!e) return p + ": never recorded";
        const auto v = compare(*e, now.id, settled ? now.size : e->size, settled ? now.tail : e->tail, false);
        if (v == LedgerVerdict::Swapped || v == LedgerVerdict::Rewound) return p + ": misplaced";
        return std::nullopt;
    });
    CHECK(f.read_file("/a.mp4") == "first");
    CHECK(asked == 1);
    // The two recordings' stored files swapped on both members.
    const std::string a = f.vol->stored_path("/a.mp4"), b = f.vol->stored_path("/b.mp4");
    for (const auto& m : f.members) {
        REQUIRE(::rename((m + "/" + a).c_str(), (m + "/x").c_str()) == 0);
        REQUIRE(::rename((m + "/" + b).c_str(), (m + "/" + a).c_str()) == 0);
        REQUIRE(::rename((m + "/x").c_str(), (m + "/" + b).c_str()) == 0);
    }
    for (int i = 0; i < 2; ++i) {
        try {
            f.read_file("/a.mp4");
            FAIL("a swapped file was opened");
        } catch (const Error& e) {
            CHECK(e.code() == EIO);
        }
    }
    CHECK(f.alerted(alert::TamperDetected, "/a.mp4: misplaced; the file is not opened"));
    int alerts = 0;
    for (const auto& al : f.alerts->recent()) alerts += al.detail.find("/a.mp4: misplaced") != std::string::npos;
    CHECK(alerts == 1);  // once per file, however often a player retries
    // A writer's handle open elsewhere: the file is held to its id only.
    auto w = f.vol->open("/d.mp4", O_WRONLY, f.who);
    f.vol->write(*w, reinterpret_cast<const uint8_t*>("more"), 4, 5);
    CHECK(f.read_file("/d.mp4") == "thirdmore");
    f.vol->release(std::move(w));
    CHECK(f.read_file("/d.mp4") == "thirdmore");
}

TEST_CASE("a file grown through a handle after a rename is recorded under its new name") {
    // fsx_model.py (t41) found it: fallocate recorded the name the file was
    // opened by, so the ledger bound the old name to this file and refused
    // the next file created there as swapped.
    test::Fixture f;
    LiveLedger live;
    CHECK(f.log->follow([&](const json& r, uint64_t end) { live.apply(r, end); }).ok);
    f.vol->set_place_check([&](const std::string& p, const Volume::Facts& now, bool) -> std::optional<std::string> {
        const auto e = live.find(p);
        if (e && compare(*e, now.id, now.size, now.tail, false) == LedgerVerdict::Swapped) return p + ": misplaced";
        return std::nullopt;
    });
    auto h = f.vol->create("/seg.mp4", 0644, O_CREAT | O_RDWR, f.who);
    f.vol->rename("/seg.mp4", "/kept.mp4", 0, f.who);
    f.write_file("/seg.mp4", "a new segment at the old name");
    f.vol->fallocate(*h, 0, 0, 100000, f.who);
    REQUIRE(live.find("/kept.mp4"));
    CHECK(live.find("/kept.mp4")->size == 100000);
    f.vol->release(std::move(h));
    CHECK(f.read_file("/seg.mp4") == "a new segment at the old name");
    CHECK(f.read_file("/kept.mp4") == std::string(100000, '\0'));
}

TEST_CASE("a ledger checkpoint round-trips, and a malformed one is refused") {
    Ledger l;
    l.apply(rec("create", "/cam1/a.mp4", {{"id", "aa"}}));
    l.apply(rec("write", "/cam1/a.mp4", {{"id", "aa"}, {"size", 10}, {"tail", "t1"}}));
    l.apply(rec("create", "/cam2/b.mp4", {{"id", "bb"}}));
    const auto back = Ledger::from_json(l.to_json());
    REQUIRE(back);
    CHECK(back->last_seq() == l.last_seq());
    REQUIRE(back->files().size() == 2);
    const auto& a = back->files().at("/cam1/a.mp4");
    CHECK((a.id == "aa" && a.closed && a.size == 10 && a.tail == "t1"));
    CHECK_FALSE(back->files().at("/cam2/b.mp4").closed);
    auto j = l.to_json();
    j["files"]["relative"] = json::array({"aa", true, 1, "t", 1});
    CHECK_FALSE(Ledger::from_json(j));
    j = l.to_json();
    j["files"]["/x"] = json::array({"aa", "yes", 1, "t", 1});
    CHECK_FALSE(Ledger::from_json(j));
    CHECK_FALSE(Ledger::from_json(json::array()));
}

TEST_CASE("a file unlinked while open leaves with its removed directory, not with a later one of that name") {
    Ledger l;
    l.apply(rec("create", "/cam/y.mp4", {{"id", "yy"}}));
    l.apply(rec("create", "/cam2/z.mp4", {{"id", "zz"}}));
    l.apply(rec("unlink", "/cam/y.mp4", {{"kept_open_as", "/cam/.fuse_hidden01"}}));
    l.apply(rec("rmdir", "/cam"));
    CHECK(l.files().empty() == false);
    CHECK_FALSE(l.files().count("/cam/.fuse_hidden01"));
    // A handle's session closes while another keeps the orphan open ...
    l.apply(rec("write", "/cam/.fuse_hidden01", {{"id", "yy"}, {"size", 5}, {"tail", "tx"}, {"orphaned", true}}));
    CHECK_FALSE(l.files().count("/cam/.fuse_hidden01"));
    // ... and a directory made and renamed under the old name does not carry it.
    l.apply(rec("mkdir", "/cam"));
    l.apply(rec("rename", "/cam", {{"to", "/old"}}));
    CHECK(l.files().size() == 1);
    // Its last handle closes: the session's record, then the daemon's unlink.
    l.apply(rec("write", "/cam/.fuse_hidden01", {{"id", "yy"}, {"size", 9}, {"tail", "ty"}, {"orphaned", true}}));
    l.apply(rec("unlink", "/cam/.fuse_hidden01"));
    CHECK(l.files().size() == 1);
    CHECK(l.files().count("/cam2/z.mp4"));
    // A failed rmdir removes nothing; a sibling sharing the prefix is not below it.
    l.apply(rec("create", "/cam2x/w.mp4", {{"id", "ww"}}));
    auto failed = rec("rmdir", "/cam2");
    failed["result"] = "ENOTEMPTY";
    l.apply(failed);
    l.apply(rec("rmdir", "/cam2x/sub"));
    CHECK(l.files().size() == 2);
}
