// member_path.hpp — the one way into a member's files.
//
// A member disk is hostile input (docs/format.md, "Threat model"): someone
// with the disk offline, or a local account, may plant a symlink, a `..`
// escape, a fifo or a device node where nvrfs expects its own file. Every
// path on a member is therefore resolved beneath the member root with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS):
// no component is ever followed out of the member or through a link, and
// the last component is never followed either. Metadata calls act on the
// entry itself (an fd, or the parent fd with AT_SYMLINK_NOFOLLOW).
//
// Results are an fd or 0 on success, -errno on failure, as the mirror
// fan-out collects them. Two errnos mean "this member was tampered with":
//   ELOOP        a symlink (or an escape) where a stored entry should be;
//   EMEDIUMTYPE  an entry of a type nvrfs never stores (fifo, socket, device)
//                where a regular file or directory was expected.
// is_tamper_errno() tells them apart from ordinary failures.
#pragma once
#include "base/io.hpp"

#include <string>
#include <sys/stat.h>
#include <sys/types.h>

namespace nvrfs::member_path {

bool is_tamper_errno(int err);  // err > 0

// openat2 beneath `root`; O_NOFOLLOW and O_CLOEXEC are always added. fd or -errno.
int open(int root, const std::string& rel, int flags, mode_t mode = 0);
// A regular file (O_NONBLOCK added, so a planted fifo cannot hang the daemon;
// it stays set, which a regular file's reads and writes ignore).
// `st`, when given, receives what the open found (it is checked anyway).
int open_file(int root, const std::string& rel, int flags, mode_t mode = 0, struct stat* st = nullptr);
// A directory, for reading or as a base for *at() calls.
int open_dir(int root, const std::string& rel);

// The directory holding the last component of `rel`, and that component.
// `dir` is `root` itself for a one-component path (then nothing is owned).
struct At {
    UniqueFd owned;
    int dir = -1;
    std::string name;
};
int locate(int root, const std::string& rel, At& at);  // 0 or -errno

// lstat beneath root: the entry itself, never what a link points to.
int stat(int root, const std::string& rel, struct stat& st);
int mkdir(int root, const std::string& rel, mode_t mode);
// `before`, when given, receives the entry's lstat taken right before it is
// removed (zeroed when there was none to take).
int unlink(int root, const std::string& rel, struct stat* before = nullptr);
int rmdir(int root, const std::string& rel);
int rename(int root, const std::string& from, const std::string& to, unsigned flags);
// Refuse symlinks (ELOOP) rather than change what they point to.
int chmod(int root, const std::string& rel, mode_t mode);
int chown(int root, const std::string& rel, uid_t uid, gid_t gid);
int utimens(int root, const std::string& rel, const struct timespec ts[2]);

}  // namespace nvrfs::member_path
