#include "store/chunk_crypto.hpp"
#include "base/crypto.hpp"
#include "base/error.hpp"
#include "store/names.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

using namespace nvrfs;

TEST_CASE("AES-256-GCM round trip and tamper detection") {
    const SecretKey k = SecretKey::random(32);
    uint8_t nonce[12] = {1, 2, 3};
    const std::string msg = "camera 7, 2026-11-25 21:00";
    const std::string aad = "context";
    std::vector<uint8_t> ct(msg.size()), pt(msg.size());
    uint8_t tag[16];
    gcm_seal(k, nonce, as_bytes(aad), as_bytes(msg), ct.data(), tag);
    CHECK(std::string(ct.begin(), ct.end()) != msg);
    REQUIRE(gcm_open(k, nonce, as_bytes(aad), ct, tag, pt.data()));
    CHECK(std::string(pt.begin(), pt.end()) == msg);
    ct[3] ^= 1;
    CHECK_FALSE(gcm_open(k, nonce, as_bytes(aad), ct, tag, pt.data()));
    ct[3] ^= 1;
    CHECK_FALSE(gcm_open(k, nonce, as_bytes("other"), ct, tag, pt.data()));
    CHECK_FALSE(gcm_open(SecretKey::random(32), nonce, as_bytes(aad), ct, tag, pt.data()));
}

TEST_CASE("AES-256-SIV is deterministic and bound to its associated data") {
    const SecretKey k = SecretKey::random(64);
    const auto a = siv_seal(k, as_bytes("dir1"), as_bytes("seg_0001.mp4"));
    CHECK(a == siv_seal(k, as_bytes("dir1"), as_bytes("seg_0001.mp4")));
    CHECK(a != siv_seal(k, as_bytes("dir2"), as_bytes("seg_0001.mp4")));
    auto back = siv_open(k, as_bytes("dir1"), a);
    REQUIRE(back);
    CHECK(std::string(back->begin(), back->end()) == "seg_0001.mp4");
    CHECK_FALSE(siv_open(k, as_bytes("dir2"), a));
    auto bad = a;
    bad.back() ^= 0x80;
    CHECK_FALSE(siv_open(k, as_bytes("dir1"), bad));
}

TEST_CASE("HKDF separates purposes; HMAC and SHA-256 match known answers") {
    const SecretKey ikm(as_bytes(std::string(32, 'k')));
    CHECK(hex(hkdf_sha256(ikm, {}, "a").bytes()) != hex(hkdf_sha256(ikm, {}, "b").bytes()));
    CHECK(hex(hkdf_sha256(ikm, {}, "a").bytes()) == hex(hkdf_sha256(ikm, {}, "a").bytes()));
    // FIPS 180-2 test vector.
    CHECK(hex(sha256(as_bytes("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    // RFC 4231 test case 2.
    CHECK(hex(hmac_sha256(SecretKey(as_bytes("Jefe")), as_bytes("what do ya want for nothing?"))) ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("base64url and hex round trips; non-canonical input is refused") {
    for (size_t n = 0; n < 40; ++n) {
        Bytes b(n);
        random_bytes(b);
        CHECK(unbase64url(base64url(b)) == b);
        CHECK(unhex(hex(b)) == b);
    }
    CHECK_FALSE(unbase64url("AB"));  // low bits set: not what base64url() writes
    CHECK_FALSE(unbase64url("A"));
    CHECK_FALSE(unbase64url("a.b"));
    CHECK_FALSE(unhex("zz"));
}

TEST_CASE("a sealed chunk opens only at its own file, index, last flag and generation") {
    const SecretKey content = SecretKey::random(32);
    FileHeader h;
    random_bytes(h.id);
    const SecretKey fk = file_key(content, h);
    Bytes plain(1000, 'x'), stored(1000 + kChunkOverhead), out(1000);
    seal_chunk(fk, h, 5, false, plain, stored.data());
    CHECK(open_chunk(fk, h, 5, false, stored, out.data()));
    CHECK(out == plain);
    CHECK_FALSE(open_chunk(fk, h, 4, false, stored, out.data()));  // moved
    CHECK_FALSE(open_chunk(fk, h, 5, true, stored, out.data()));   // truncated to here
    FileHeader g = h;
    g.generation++;
    CHECK_FALSE(open_chunk(fk, g, 5, false, stored, out.data()));  // replayed from before a truncate
    FileHeader other;
    random_bytes(other.id);
    CHECK_FALSE(open_chunk(file_key(content, other), other, 5, false, stored, out.data()));  // spliced
}

TEST_CASE("a zero-form chunk opens to zeros only with its own key, place and zero body") {
    const SecretKey content = SecretKey::random(32);
    FileHeader h;
    random_bytes(h.id);
    const SecretKey fk = file_key(content, h);
    const size_t n = 4000;
    Bytes stored(n + kChunkOverhead, 0), out(n, 0xaa);
    const ZeroChunkEnds z = seal_zero_chunk(fk, h, 7, true, n);
    std::memcpy(stored.data(), z.nonce.data(), kGcmNonce);
    std::memcpy(stored.data() + kGcmNonce + n, z.tag.data(), kGcmTag);
    CHECK(open_chunk(fk, h, 7, true, stored, out.data()));
    CHECK(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; }));
    CHECK_FALSE(open_chunk(fk, h, 6, true, stored, out.data()));   // moved
    CHECK_FALSE(open_chunk(fk, h, 7, false, stored, out.data()));  // no longer last
    FileHeader other;
    random_bytes(other.id);
    CHECK_FALSE(open_chunk(file_key(content, other), other, 7, true, stored, out.data()));  // spliced
    Bytes shorter(stored.begin(), stored.end() - 1);
    CHECK_FALSE(open_chunk(fk, h, 7, true, shorter, out.data()));  // another length
    stored[kGcmNonce + 10] = 1;
    CHECK_FALSE(open_chunk(fk, h, 7, true, stored, out.data()));   // something written in the hole
    Bytes all_zero(n + kChunkOverhead, 0);
    CHECK_FALSE(open_chunk(fk, h, 7, true, all_zero, out.data()));  // zeroed by someone without the key
}

TEST_CASE("a stored file's kind and mode are bound into its key") {
    const SecretKey content = SecretKey::random(32);
    FileHeader file, link, fifo, fifo2;
    random_bytes(file.id);
    link = fifo = fifo2 = file;
    link.kind = Kind::Symlink;
    fifo.kind = fifo2.kind = Kind::Fifo;
    fifo.perms = 0644;
    fifo2.perms = 0666;
    CHECK(file_key(content, file).bytes().size() == 32);
    CHECK_FALSE(equal_ct(file_key(content, file).bytes(), file_key(content, link).bytes()));
    CHECK_FALSE(equal_ct(file_key(content, fifo).bytes(), file_key(content, fifo2).bytes()));
    for (const FileHeader& h : {file, link, fifo}) {
        const auto b = h.encode();
        CHECK(FileHeader::decode(b) == h);
    }
    auto bad = file.encode();
    bad[6] = 0x50;  // kind 5: none (4 is an archived regular file)
    CHECK_FALSE(FileHeader::decode(bad));
    bad[6] = 0x11;  // a symlink with permission bits
    CHECK_FALSE(FileHeader::decode(bad));
}

TEST_CASE("a name encrypts the same from the cache as from the cipher, past the cache's bound, per directory IV") {
    const SecretKey k = SecretKey::random(64);
    const NameCodec cached(k);
    DirIv a{}, b{};
    a[0] = 1;
    b[0] = 2;
    std::vector<std::string> first;
    for (int i = 0; i < 5000; ++i) first.push_back(cached.encrypt(a, "cam" + std::to_string(i) + ".mp4"));
    for (int i = 0; i < 5000; ++i) {
        const std::string n = "cam" + std::to_string(i) + ".mp4";
        const NameCodec fresh(k);  // never asked before: the cipher itself
        CHECK(cached.encrypt(a, n) == first[i]);
        CHECK(fresh.encrypt(a, n) == first[i]);
        CHECK(cached.encrypt(b, n) != first[i]);  // the IV is part of the key
        CHECK(cached.decrypt(a, first[i]) == n);
    }
    CHECK_THROWS_AS(cached.encrypt(a, std::string(256, 'x')), Error);
}
