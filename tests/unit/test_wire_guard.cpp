// wire_guard: which FUSE requests nvrfsd answers before libfuse sees them.
#include "../../fuse/wire_guard.hpp"

#include <cstring>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace nvrfs;

namespace {

template <class T>
void append(std::vector<char>& v, const T& x) {
    const size_t at = v.size();
    v.resize(at + sizeof x);
    std::memcpy(v.data() + at, &x, sizeof x);
}

// One request as the kernel writes it: header, rename body, two names.
std::vector<char> rename_request(uint32_t opcode, uint64_t dir, uint64_t newdir, const std::string& from,
                                 const std::string& to, uint32_t flags = 0) {
    std::vector<char> body;
    if (opcode == FUSE_RENAME) {
        fuse_rename_in r{};
        r.newdir = newdir;
        append(body, r);
    } else {
        fuse_rename2_in r{};
        r.newdir = newdir;
        r.flags = flags;
        append(body, r);
    }
    body.insert(body.end(), from.begin(), from.end());
    body.push_back('\0');
    body.insert(body.end(), to.begin(), to.end());
    body.push_back('\0');
    fuse_in_header in{};
    in.len = static_cast<uint32_t>(sizeof in + body.size());
    in.opcode = opcode;
    in.unique = 77;
    in.nodeid = dir;
    std::vector<char> req;
    append(req, in);
    req.insert(req.end(), body.begin(), body.end());
    return req;
}

std::optional<int> answer(const std::vector<char>& req) { return answer_before_libfuse(req.data(), req.size()); }

}  // namespace

TEST_CASE("a rename of a name onto itself is answered before libfuse, which would hang on it") {
    CHECK(answer(rename_request(FUSE_RENAME, 2, 2, "a.mp4", "a.mp4")) == 0);
    CHECK(answer(rename_request(FUSE_RENAME2, 5, 5, "d", "d")) == 0);
    CHECK(answer(rename_request(FUSE_RENAME2, 5, 5, "d", "d", RENAME_EXCHANGE)) == 0);
    CHECK(answer(rename_request(FUSE_RENAME2, 5, 5, "d", "d", RENAME_NOREPLACE)) == EEXIST);
}

TEST_CASE("every other request goes to libfuse") {
    CHECK_FALSE(answer(rename_request(FUSE_RENAME, 2, 3, "a.mp4", "a.mp4")));  // another directory
    CHECK_FALSE(answer(rename_request(FUSE_RENAME, 2, 2, "a.mp4", "b.mp4")));
    CHECK_FALSE(answer(rename_request(FUSE_RENAME, 2, 2, "a", "a.mp4")));      // a prefix is not the name
    CHECK_FALSE(answer(rename_request(FUSE_RENAME2, 2, 2, "a.mp4", "a.mp")));
    auto other = rename_request(FUSE_RENAME, 2, 2, "a", "a");
    reinterpret_cast<fuse_in_header*>(other.data())->opcode = FUSE_LINK;
    CHECK_FALSE(answer(other));
}

TEST_CASE("a cut or unterminated rename request is left to libfuse, never read past its end") {
    const auto whole = rename_request(FUSE_RENAME, 2, 2, "a.mp4", "a.mp4");
    for (size_t n = 0; n < whole.size(); ++n) {
        std::vector<char> cut(whole.begin(), whole.begin() + static_cast<long>(n));
        CHECK_FALSE(answer(cut));  // header says longer than what was read
        if (n >= sizeof(fuse_in_header)) {
            // ... and the header made to agree: the names lack their end.
            reinterpret_cast<fuse_in_header*>(cut.data())->len = static_cast<uint32_t>(n);
            CHECK_FALSE(answer(cut));
        }
    }
    CHECK(answer(whole) == 0);
}
