// caller: who an audit record names, with and without the name cache.
#include "base/caller.hpp"

#include <doctest/doctest.h>
#include <pwd.h>
#include <unistd.h>

using namespace nvrfs;

TEST_CASE("Caller names the user from the password database, or the number when there is none") {
    UserNames names;
    const passwd* root = ::getpwuid(0);
    REQUIRE(root != nullptr);
    const std::string want = root->pw_name;
    CHECK(Caller::of(0, 0, ::getpid()).user == want);
    CHECK(Caller::of(0, 0, ::getpid(), &names).user == want);
    CHECK(Caller::of(0, 0, ::getpid(), &names).user == want);  // from the cache
    REQUIRE(::getpwuid(3999999) == nullptr);
    CHECK(Caller::of(3999999, 0, 0, &names).user == "3999999");
    CHECK(names.of(3999999) == "3999999");
    // The process name is read per call, never cached: a pid is reused.
    const Caller me = Caller::of(0, 0, ::getpid(), &names);
    CHECK(me.comm == "unit-tests");
    CHECK(Caller::of(0, 0, 0, &names).comm == "?");
}
