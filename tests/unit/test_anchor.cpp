// The host anchor (issue 12): the host's own, authenticated record of a set.
#include "base/error.hpp"
#include "helpers.hpp"
#include "audit/host_anchor.hpp"

#include <doctest/doctest.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace nvrfs;

namespace {

std::optional<std::pair<uint64_t, std::string>> none(uint64_t) { return std::nullopt; }

}  // namespace

TEST_CASE("the host anchor round-trips, and an edited or foreign one is refused") {
    test::TempDir d("nvrfs-anchor");
    Uuid set{};
    set[0] = 7;
    const SecretKey key = SecretKey::random(32);
    HostAnchor a(d.path + "/state", set, key);
    CHECK_FALSE(a.load());  // no record yet (not even the directory)
    AnchorState s{12, 40, "abc", 9000, ""};
    a.store(s);
    const auto back = a.load();
    REQUIRE(back);
    CHECK(back->events == 12);
    CHECK(back->audit_seq == 40);
    CHECK(back->audit_mac == "abc");
    CHECK(back->audit_end == 9000);
    CHECK_FALSE(back->time.empty());

    HostAnchor other(d.path + "/state", set, SecretKey::random(32));
    CHECK_THROWS_AS(other.load(), Error);  // another key: not this set's record

    std::string text;
    {
        std::ifstream in(a.path());
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    }
    const auto at = text.find("\"events\":12");
    REQUIRE(at != std::string::npos);
    text.replace(at, 11, "\"events\":11");
    std::ofstream(a.path(), std::ios::trunc) << text;
    try {
        a.load();
        FAIL("an edited record was accepted");
    } catch (const Error& e) {
        CHECK(e.code() == EBADMSG);
        CHECK(std::string(e.what()).find("fails its MAC") != std::string::npos);
    }

    CHECK_FALSE(a.acceptance());
    a.request_acceptance("uid 0 (root)");
    CHECK(a.acceptance()->find("uid 0 (root)") != std::string::npos);
    a.clear_acceptance();
    CHECK_FALSE(a.acceptance());
}

TEST_CASE("comparing members with the host's record") {
    const AnchorState a{10, 50, "m50", 7000, "then"};
    auto at = [](uint64_t end) -> std::optional<std::pair<uint64_t, std::string>> {
        if (end == 7000) return std::make_pair(uint64_t(50), std::string("m50"));
        return std::nullopt;
    };
    CHECK_FALSE(compare_with_anchor(a, 10, 50, at).rollback);      // as left
    CHECK_FALSE(compare_with_anchor(a, 11, 60, at).rollback);      // newer: the record trails by design
    auto older = compare_with_anchor(a, 9, 50, at);
    CHECK(older.rollback);
    CHECK(older.reason.find("event counter is 9") != std::string::npos);
    auto cut = compare_with_anchor(a, 10, 47, at);
    CHECK(cut.rollback);
    CHECK(cut.reason.find("records #48..#50 are missing") != std::string::npos);
    auto fresh = compare_with_anchor(a, 10, 0, none);
    CHECK(fresh.reason.find("records #1..#50") != std::string::npos);  // a log deleted and started again
    auto replaced = compare_with_anchor(a, 10, 55, none);
    CHECK(replaced.rollback);
    CHECK(replaced.reason.find("replaced") != std::string::npos);
    auto other_mac = compare_with_anchor(a, 10, 55, [](uint64_t) { return std::make_optional(std::make_pair(uint64_t(50), std::string("x"))); });
    CHECK(other_mac.rollback);
}
