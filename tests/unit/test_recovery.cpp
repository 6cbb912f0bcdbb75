// The recovery key (issue 14): the master key under a passphrase.
#include "base/error.hpp"
#include "store/recovery.hpp"
#include "store/tpm_seal.hpp"

#include <doctest/doctest.h>

using namespace nvrfs;

TEST_CASE("a recovery record opens with its passphrase and set only, and refuses altered or absurd records") {
    const SecretKey master = SecretKey::random(32);
    const Uuid set = new_uuid(), other = new_uuid();
    const RecoveryWrap w = RecoveryWrap::make(master, "correct horse battery staple", set, kRecoveryMinIterations);
    const auto b = w.encode();
    const RecoveryWrap back = RecoveryWrap::decode(ByteView(b.data(), b.size()), "rec");
    const SecretKey m = back.unwrap("correct horse battery staple", set, "rec");
    CHECK(std::equal(m.bytes().begin(), m.bytes().end(), master.bytes().begin(), master.bytes().end()));
    auto rejected = [&](const RecoveryWrap& r, const char* pass, const Uuid& s) {
        try {
            r.unwrap(pass, s, "rec");
            return false;
        } catch (const Error& e) {
            return e.code() == EKEYREJECTED;
        }
    };
    CHECK(rejected(back, "correct horse battery stapl", set));   // wrong passphrase
    CHECK(rejected(back, "correct horse battery staple", other));  // another set's record
    for (size_t at : {20u, 40u, 60u, 90u}) {  // salt, nonce, wrapped key, tag
        auto bad = b;
        bad[at] ^= 1;
        CHECK(rejected(RecoveryWrap::decode(ByteView(bad.data(), bad.size()), "rec"), "correct horse battery staple", set));
    }
    auto many = b;
    many[12] = 0x7f;  // 2 billion iterations: refused before any work
    CHECK_THROWS_AS(RecoveryWrap::decode(ByteView(many.data(), many.size()), "rec"), Error);
    auto few = b;
    few[12] = few[13] = few[14] = 0, few[15] = 1;
    CHECK_THROWS_AS(RecoveryWrap::decode(ByteView(few.data(), few.size()), "rec"), Error);
    CHECK_THROWS_AS(RecoveryWrap::decode(ByteView(b.data(), b.size() - 1), "rec"), Error);
    CHECK_THROWS_AS(RecoveryWrap::make(master, "x", set, 1000), Error);
}

TEST_CASE("tpm_pcrs: a PCR list, 'none', or a clear error") {
    CHECK(parse_pcrs("7") == std::vector<int>{7});
    CHECK(parse_pcrs("0,2,7") == std::vector<int>{0, 2, 7});
    CHECK(parse_pcrs("none").empty());
    for (const char* bad : {"24", "-1", "7,", ",7", "x", "7;8", "1,,2"}) CHECK_THROWS_AS(parse_pcrs(bad), Error);
    Uuid a{}, b{};
    b[1] = 1;
    const uint32_t ia = tpm_counter_index(a);
    CHECK((ia >> 16) == 0x01C0u);  // the owner's range
    CHECK(tpm_counter_index(a) != tpm_counter_index(b));
}
