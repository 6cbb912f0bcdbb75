#include "base/member_path.hpp"

#include <cerrno>
#include <string_view>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace nvrfs::member_path {
namespace {

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

int openat2_once(int root, const char* rel, int flags, mode_t mode) {
    open_how how{};
    how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
    // The kernel refuses a mode without O_CREAT/O_TMPFILE.
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = kResolve;
    for (;;) {
        const long fd = ::syscall(SYS_openat2, root, rel, &how, sizeof how);
        if (fd >= 0) return static_cast<int>(fd);
        // EAGAIN: a rename raced the lookup (RESOLVE_BENEATH is strict); retry.
        if (errno == EINTR || errno == EAGAIN) continue;
        // EXDEV: the path would leave the member (".." or an absolute link).
        return errno == EXDEV ? -ELOOP : -errno;
    }
}

// A path longer than the kernel takes at once (PATH_MAX) is resolved a few
// thousand bytes at a time, each piece beneath the directory the previous one
// reached, under the same rules.
constexpr size_t kPiece = 3072;

int sys_openat2(int root, const char* rel, int flags, mode_t mode) {
    std::string_view r(rel);
    if (r.size() < kPiece) return openat2_once(root, rel, flags, mode);
    UniqueFd dir;
    int at = root;
    while (r.size() >= kPiece) {
        const size_t cut = r.rfind('/', kPiece);
        if (cut == std::string_view::npos || cut == 0) return -ENAMETOOLONG;
        const std::string head(r.substr(0, cut));
        const int fd = openat2_once(at, head.c_str(), O_PATH | O_DIRECTORY, 0);
        if (fd < 0) return fd;
        dir.reset(fd);
        at = fd;
        r.remove_prefix(cut + 1);
    }
    return openat2_once(at, std::string(r).c_str(), flags, mode);
}

int type_error(mode_t m, bool want_dir) {
    if (S_ISLNK(m)) return -ELOOP;
    if (S_ISDIR(m)) return want_dir ? 0 : -EISDIR;
    if (S_ISREG(m)) return want_dir ? -ENOTDIR : 0;
    return -EMEDIUMTYPE;
}

}  // namespace

bool is_tamper_errno(int err) { return err == ELOOP || err == EMEDIUMTYPE; }

int open(int root, const std::string& rel, int flags, mode_t mode) { return sys_openat2(root, rel.c_str(), flags, mode); }

int open_file(int root, const std::string& rel, int flags, mode_t mode, struct stat* out) {
    const int fd = sys_openat2(root, rel.c_str(), flags | O_NONBLOCK, mode);
    if (fd < 0) return fd;
    struct stat st {};
    // O_NONBLOCK stays: reads and writes of a regular file ignore it (and the
    // fcntl that cleared it was two syscalls on every create).
    const int r = ::fstat(fd, &st) < 0 ? -errno : type_error(st.st_mode, false);
    if (out) *out = st;
    if (r < 0) {
        ::close(fd);
        return r;
    }
    return fd;
}

int open_dir(int root, const std::string& rel) { return sys_openat2(root, rel.c_str(), O_RDONLY | O_DIRECTORY, 0); }

int locate(int root, const std::string& rel, At& at) {
    const auto slash = rel.rfind('/');
    if (slash == std::string::npos) {
        at.dir = root;
        at.name = rel;
        return 0;
    }
    at.name = rel.substr(slash + 1);
    const std::string parent = rel.substr(0, slash);
    const int fd = sys_openat2(root, parent.c_str(), O_PATH | O_DIRECTORY, 0);
    if (fd == -ENOTDIR) {
        // A link where the parent directory should be says ENOTDIR here; it is tamper.
        struct stat st {};
        const int p = sys_openat2(root, parent.c_str(), O_PATH, 0);
        const bool link = p >= 0 && ::fstat(p, &st) == 0 && S_ISLNK(st.st_mode);
        if (p >= 0) ::close(p);
        return link ? -ELOOP : fd;
    }
    if (fd < 0) return fd;
    at.owned.reset(fd);
    at.dir = fd;
    return 0;
}

int stat(int root, const std::string& rel, struct stat& st) {
    if (rel == ".") return ::fstat(root, &st) < 0 ? -errno : 0;
    if (rel.find('/') == std::string::npos)
        return ::fstatat(root, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
    // One openat2 of the whole path: a name that is not there (every lookup
    // before a create) costs one syscall, not three. O_PATH|O_NOFOLLOW with
    // RESOLVE_NO_SYMLINKS opens a trailing link itself; a link on the way is
    // ELOOP, as locate() makes it.
    const int fd = sys_openat2(root, rel.c_str(), O_PATH, 0);
    if (fd < 0) return fd;
    const int r = ::fstat(fd, &st) < 0 ? -errno : 0;
    ::close(fd);
    return r;
}

int mkdir(int root, const std::string& rel, mode_t mode) {
    At at;
    if (int r = locate(root, rel, at); r < 0) return r;
    return ::mkdirat(at.dir, at.name.c_str(), mode) < 0 ? -errno : 0;
}

int unlink(int root, const std::string& rel, struct stat* before) {
    At at;
    if (int r = locate(root, rel, at); r < 0) return r;
    if (before && ::fstatat(at.dir, at.name.c_str(), before, AT_SYMLINK_NOFOLLOW) < 0) *before = {};
    return ::unlinkat(at.dir, at.name.c_str(), 0) < 0 ? -errno : 0;
}

int rmdir(int root, const std::string& rel) {
    At at;
    if (int r = locate(root, rel, at); r < 0) return r;
    return ::unlinkat(at.dir, at.name.c_str(), AT_REMOVEDIR) < 0 ? -errno : 0;
}

int rename(int root, const std::string& from, const std::string& to, unsigned flags) {
    At a, b;
    if (int r = locate(root, from, a); r < 0) return r;
    if (int r = locate(root, to, b); r < 0) return r;
    return ::renameat2(a.dir, a.name.c_str(), b.dir, b.name.c_str(), flags) < 0 ? -errno : 0;
}

// The entry itself as an O_PATH descriptor (it opens nothing a fifo could
// block on), refused unless it is a regular file or a directory: metadata is
// then changed through that same descriptor, so no link is ever followed.
int open_entry(int root, const std::string& rel, UniqueFd& out) {
    const int fd = sys_openat2(root, rel.c_str(), O_PATH, 0);
    if (fd < 0) return fd;
    out.reset(fd);
    struct stat st {};
    if (::fstat(fd, &st) < 0) return -errno;
    return type_error(st.st_mode, S_ISDIR(st.st_mode));
}

int chmod(int root, const std::string& rel, mode_t mode) {
    if (rel == ".") return ::fchmod(root, mode) < 0 ? -errno : 0;
    UniqueFd fd;
    if (int r = open_entry(root, rel, fd); r < 0) return r;
    const std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
    return ::chmod(proc.c_str(), mode) < 0 ? -errno : 0;
}

int chown(int root, const std::string& rel, uid_t uid, gid_t gid) {
    if (rel == ".") return ::fchown(root, uid, gid) < 0 ? -errno : 0;
    UniqueFd fd;
    if (int r = open_entry(root, rel, fd); r < 0) return r;
    return ::fchownat(fd.get(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

int utimens(int root, const std::string& rel, const struct timespec ts[2]) {
    if (rel == ".") return ::futimens(root, ts) < 0 ? -errno : 0;
    At at;
    if (int r = locate(root, rel, at); r < 0) return r;
    return ::utimensat(at.dir, at.name.c_str(), ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

}  // namespace nvrfs::member_path
