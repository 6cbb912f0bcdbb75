#include "store/tree.hpp"

#include "base/error.hpp"
#include "base/io.hpp"

#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace nvrfs {
namespace {

struct DirClose {
    void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirClose>;

std::vector<std::string> list_names(int dirfd, const std::string& where) {
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw_errno(errno, where, "cannot open directory");
    DirPtr d(::fdopendir(fd));
    if (!d) {
        int e = errno;
        ::close(fd);
        throw_errno(e, where, "cannot read directory");
    }
    std::vector<std::string> out;
    while (dirent* e = ::readdir(d.get())) {
        std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(std::move(n));
    }
    return out;
}

}  // namespace

void copy_meta(int fd, const struct stat& st) {
    ::fchown(fd, st.st_uid, st.st_gid);
    ::fchmod(fd, st.st_mode & 07777);
    const timespec ts[2] = {st.st_atim, st.st_mtim};
    ::futimens(fd, ts);
}

void clear_dir_at(int dirfd, const std::function<bool(const std::string&)>& keep, const std::string& where) {
    for (const auto& n : list_names(dirfd, where)) {
        if (keep(n)) continue;
        struct stat st {};
        if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) throw_errno(errno, where + "/" + n, "cannot stat");
        if (S_ISDIR(st.st_mode)) {
            UniqueFd sub(::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
            if (!sub) throw_errno(errno, where + "/" + n, "cannot open");
            clear_dir_at(sub.get(), [](const std::string&) { return false; }, where + "/" + n);
            if (::unlinkat(dirfd, n.c_str(), AT_REMOVEDIR) < 0) throw_errno(errno, where + "/" + n, "cannot remove");
        } else if (::unlinkat(dirfd, n.c_str(), 0) < 0) {
            throw_errno(errno, where + "/" + n, "cannot remove");
        }
    }
}

}  // namespace nvrfs
