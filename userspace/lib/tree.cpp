#include "tree.hpp"

#include "error.hpp"
#include "io.hpp"

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

uint64_t copy_tree_at(int src, int dst, const std::function<bool(const std::string&)>& skip, const std::string& where) {
    uint64_t total = 0;
    std::function<void(int, int, const std::string&)> walk = [&](int s, int d, const std::string& rel) {
        for (const auto& n : list_names(s, where + rel)) {
            const std::string r = rel.empty() ? n : rel + "/" + n;
            if (skip(r)) continue;
            struct stat st {};
            if (::fstatat(s, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) throw_errno(errno, where + "/" + r, "cannot stat");
            if (S_ISDIR(st.st_mode)) {
                if (::mkdirat(d, n.c_str(), 0700) < 0 && errno != EEXIST) throw_errno(errno, r, "cannot create directory");
                UniqueFd sd(::openat(s, n.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
                UniqueFd dd(::openat(d, n.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
                if (!sd || !dd) throw_errno(errno, r, "cannot open directory");
                walk(sd.get(), dd.get(), r);
                copy_meta(dd.get(), st);
            } else if (S_ISREG(st.st_mode)) {
                UniqueFd sf(::openat(s, n.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
                if (!sf) throw_errno(errno, where + "/" + r, "cannot open");
                UniqueFd df(::openat(d, n.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
                if (!df) throw_errno(errno, r, "cannot create");
                if (int e = copy_range(sf.get(), 0, df.get(), 0, static_cast<uint64_t>(st.st_size)); e < 0)
                    throw_errno(-e, where + "/" + r, "cannot copy");
                total += static_cast<uint64_t>(st.st_size);
                if (::fsync(df.get()) < 0) throw_errno(errno, r, "cannot fsync");
                copy_meta(df.get(), st);
            }
            // Nothing else is ever stored by nvrfs; anything else is left behind.
        }
    };
    walk(src, dst, "");
    return total;
}

}  // namespace nvrfs
