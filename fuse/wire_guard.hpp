// wire_guard.hpp — FUSE requests answered before libfuse's high-level layer.
//
// libfuse 3.14's high-level API (Debian 12) locks both names of a rename
// before calling the file system. A rename of a name onto itself in the same
// directory locks the same node twice, fails, queues, and retries forever:
// that worker never returns, and every later request that needs the name or
// its directory waits behind it, so the whole mount hangs (a recorder stops).
// The kernel normally answers rename(a, a) itself; it still sends one when the
// two lookups of the name met different inodes, which four processes renaming
// the same names between a directory and its subdirectories reach within
// seconds (tests/stress/chaos_names.py, t42).
//
// POSIX: renaming a name onto itself changes nothing and succeeds, except
// that RENAME_NOREPLACE fails with EEXIST because the target exists. Nothing
// on the members changes, so nothing is audited.
#pragma once
#include <linux/fuse.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // RENAME_NOREPLACE (glibc, _GNU_SOURCE)
#include <cstring>
#include <optional>

namespace nvrfs {

// The errno to answer a request with without passing it on (0 = success),
// or nothing when it goes to libfuse as usual. `data` is one whole request
// as read from /dev/fuse.
inline std::optional<int> answer_before_libfuse(const void* data, size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    fuse_in_header in;
    if (size < sizeof in) return std::nullopt;
    std::memcpy(&in, p, sizeof in);
    if (in.len > size) return std::nullopt;
    // FUSE_RENAME's body is fuse_rename2_in's first field (newdir).
    size_t body;
    if (in.opcode == FUSE_RENAME) body = sizeof(fuse_rename_in);
    else if (in.opcode == FUSE_RENAME2) body = sizeof(fuse_rename2_in);
    else return std::nullopt;
    const size_t names = sizeof in + body;
    if (in.len < names) return std::nullopt;
    fuse_rename2_in r{};
    std::memcpy(&r, p + sizeof in, body);
    if (r.newdir != in.nodeid) return std::nullopt;
    const auto* from = reinterpret_cast<const char*>(p + names);
    const size_t room = in.len - names;
    const size_t from_len = strnlen(from, room);
    if (from_len == room) return std::nullopt;  // not terminated: libfuse's to judge
    const char* to = from + from_len + 1;
    const size_t to_room = room - from_len - 1;
    if (strnlen(to, to_room) == to_room || std::strcmp(from, to) != 0) return std::nullopt;
    return (r.flags & RENAME_NOREPLACE) ? EEXIST : 0;
}

}  // namespace nvrfs
