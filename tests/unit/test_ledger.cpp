// The namespace ledger (issue 12): the audit log replayed into path -> file.
#include "ledger.hpp"

#include <doctest/doctest.h>

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
