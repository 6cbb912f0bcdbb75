// The archive tier's pure parts: settings, credentials, the archived header.
#include "admin/archive.hpp"
#include "admin/config.hpp"
#include "base/error.hpp"
#include "store/chunk_crypto.hpp"
#include "store/chunk_layout.hpp"

#include <doctest/doctest.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace nvrfs;

TEST_CASE("durations") {
    CHECK(parse_duration("90") == 90u);
    CHECK(parse_duration("90s") == 90u);
    CHECK(parse_duration("30m") == 1800u);
    CHECK(parse_duration("12h") == 43200u);
    CHECK(parse_duration("7d") == 604800u);
    CHECK_FALSE(parse_duration("7w"));
    CHECK_FALSE(parse_duration("d"));
    CHECK_FALSE(parse_duration(""));
    CHECK_FALSE(parse_duration("99999999999999999999d"));
}

TEST_CASE("archive settings are checked when set") {
    Config c;
    CHECK_THROWS_AS(c.set("archive", "http://bucket"), Error);
    CHECK_THROWS_AS(c.set("archive", "s3:///prefix"), Error);
    CHECK_THROWS_AS(c.set("archive_endpoint", "127.0.0.1:7480"), Error);
    CHECK_THROWS_AS(c.set("archive_after", "a week"), Error);
    CHECK_THROWS_AS(c.set("archive_when_free_below", "120%"), Error);
    CHECK_FALSE(ArchiveSettings::from(c));  // no archive: no tier
    c.set("archive", "s3://nvr/site1/");
    CHECK_THROWS_AS(ArchiveSettings::from(c), Error);  // no endpoint
    c.set("archive_endpoint", "http://127.0.0.1:7480");
    c.set("archive_after", "2d");
    c.set("archive_when_free_below", "30%");
    const auto s = ArchiveSettings::from(c);
    REQUIRE(s);
    CHECK(s->bucket == "nvr");
    CHECK(s->prefix == "site1");
    CHECK(s->target() == "s3://nvr/site1");
    CHECK(s->after == 172800u);
    CHECK(s->retention == 365u * 86400u);
    CHECK(s->when_free_below.percent);
    CHECK(s->when_free_below.value == 30);
    CHECK(s->cache == (2ull << 30));
}

TEST_CASE("archive credentials: both keys, and not readable by others") {
    char p[] = "/tmp/nvrfs-cred-XXXXXX";
    const int fd = mkstemp(p);
    REQUIRE(fd >= 0);
    close(fd);
    std::ofstream(p) << "# s3cmd style\n[default]\naccess_key = AK\nsecret_key = S K \n";
    chmod(p, 0600);
    const auto c = S3Credentials::load(p);
    CHECK(c.access_key == "AK");
    CHECK(c.secret_key == "S K");
    chmod(p, 0640);
    CHECK_THROWS_WITH_AS(S3Credentials::load(p), doctest::Contains("must not be readable by group or others"), Error);
    chmod(p, 0600);
    std::ofstream(p) << "access_key = AK\n";
    CHECK_THROWS_AS(S3Credentials::load(p), Error);
    unlink(p);
}

TEST_CASE("an archived header round-trips as kind 4 and keeps the regular file's key") {
    const SecretKey content = SecretKey::random(32);
    FileHeader h;
    random_bytes(h.id);
    h.generation = 3;
    FileHeader a = h;
    a.archived = true;
    const auto b = a.encode();
    CHECK(b[6] == 0x40);
    const auto d = FileHeader::decode(b);
    REQUIRE(d);
    CHECK(d->archived);
    CHECK(d->kind == Kind::File);
    CHECK(*d == a);
    // The same key and associated data: a chunk from the object opens as on a member.
    Bytes plain(100, 'r'), stored(100 + kChunkOverhead), out(100);
    seal_chunk(file_key(content, h), h, 2, false, plain, stored.data());
    CHECK(open_chunk(file_key(content, a), a, 2, false, stored, out.data()));
    // Archived with permission bits is no valid header.
    auto bad = b;
    bad[7] = 0x01;
    CHECK_FALSE(FileHeader::decode(bad));
}
