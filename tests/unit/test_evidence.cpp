// Privacy masks and export signatures (issue 15).
#include "base/error.hpp"
#include "transfer/evidence.hpp"

#include <doctest/doctest.h>

using namespace nvrfs;

namespace {

// RGBA of pixel (x, y) of a PAM made by Mask::pam.
std::array<uint8_t, 4> at(const std::string& pam, int w, int x, int y) {
    const size_t head = pam.find("ENDHDR\n") + 7;
    const size_t i = head + (static_cast<size_t>(y) * w + x) * 4;
    return {static_cast<uint8_t>(pam[i]), static_cast<uint8_t>(pam[i + 1]), static_cast<uint8_t>(pam[i + 2]), static_cast<uint8_t>(pam[i + 3])};
}

}  // namespace

TEST_CASE("masks: parsed strictly, filled solid, edges err outwards") {
    for (const char* bad : {"[]", "{}", R"({"rects":[[0.5,0.5,0.8,0.2]]})", R"({"rects":[[0,0,0,0.1]]})",
                            R"({"polygons":[[[0,0],[1,1]]]})", R"({"polygons":[[[0,0],[1,1],[2,0]]]})",
                            R"({"rects":[[0,0,1,1]],"fill":"red"})", R"({"rects":[[0,0,1,1]],"blur":3})", "not json"})
        CHECK_THROWS_AS(Mask::parse(bad, "m.json"), Error);
    const Mask m = Mask::parse(R"({"fill":"#ff00ff","rects":[[0.25,0.25,0.5,0.5]]})", "m.json");
    CHECK(Mask::parse(m.json(), "again").json() == m.json());  // canonical form is stable
    const std::string pam = m.pam(100, 40);
    CHECK(pam.rfind("P7\nWIDTH 100\nHEIGHT 40\n", 0) == 0);
    CHECK(at(pam, 100, 50, 20) == std::array<uint8_t, 4>{255, 0, 255, 255});  // inside
    CHECK(at(pam, 100, 25, 10) == std::array<uint8_t, 4>{255, 0, 255, 255});  // the edge pixels belong to the mask
    CHECK(at(pam, 100, 74, 29)[3] == 255);
    CHECK(at(pam, 100, 24, 20)[3] == 0);  // outside: transparent
    CHECK(at(pam, 100, 75, 20)[3] == 0);
    CHECK(at(pam, 100, 50, 9)[3] == 0);
    CHECK(at(pam, 100, 50, 30)[3] == 0);
    // A triangle: its apex row is covered, a point beside it is not.
    const Mask t = Mask::parse(R"({"polygons":[[[0.1,0.9],[0.3,0.1],[0.5,0.9]]]})", "t.json");
    const std::string tp = t.pam(100, 100);
    CHECK(at(tp, 100, 30, 50)[3] == 255);
    CHECK(at(tp, 100, 12, 20)[3] == 0);
    CHECK(Mask::rect("0.1,0.2,0.3,0.4").size() == 4);
    CHECK_THROWS_AS(Mask::rect("0.1,0.2,0.3"), Error);
}

TEST_CASE("export signatures: Ed25519 from the set's seed, verified by its PEM") {
    const SecretKey seed = SecretKey::random(32);
    const ExportKey k(seed), same(seed), other(SecretKey::random(32));
    CHECK(k.fingerprint() == same.fingerprint());
    CHECK(k.fingerprint() != other.fingerprint());
    CHECK(pem_fingerprint(k.public_pem()) == k.fingerprint());
    const Bytes sig = k.sign("SHA256SUMS text");
    CHECK(sig.size() == 64);
    const std::string s(sig.begin(), sig.end());
    CHECK(ed25519_verify(k.public_pem(), "SHA256SUMS text", s));
    CHECK_FALSE(ed25519_verify(k.public_pem(), "SHA256SUMS texT", s));
    CHECK_FALSE(ed25519_verify(other.public_pem(), "SHA256SUMS text", s));
    CHECK_FALSE(ed25519_verify("not a key", "x", s));
}
