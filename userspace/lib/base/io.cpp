#include "base/io.hpp"

#include "base/error.hpp"
#include "base/member_path.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace nvrfs {

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

ssize_t pread_full(int fd, void* buf, size_t len, off_t off) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = ::pread(fd, static_cast<char*>(buf) + done, len - done, off + static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) break;
        done += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(done);
}

UncachedReader::UncachedReader(int fd) : fd_(fd) {
    // A descriptor of its own: O_DIRECT is a property of the open file.
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    direct_.reset(::open(self.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
}

ssize_t UncachedReader::read(uint64_t off, size_t len, uint8_t*& data) {
    const uint64_t from = off / kAlign * kAlign, to = (off + len + kAlign - 1) / kAlign * kAlign;
    const size_t need = static_cast<size_t>(to - from), skip = static_cast<size_t>(off - from);
    if (need > cap_) {
        void* p = nullptr;
        if (::posix_memalign(&p, kAlign, need) != 0) return -ENOMEM;
        buf_.reset(static_cast<uint8_t*>(p));
        cap_ = need;
    }
    data = buf_.get() + skip;
    if (direct_) {
        size_t done = 0;
        for (;;) {
            const ssize_t n = ::pread(direct_.get(), buf_.get() + done, need - done, static_cast<off_t>(from + done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) break;  // refused here after all: read through the cache
            done += static_cast<size_t>(n);
            // The end of the file (a short read there need not be aligned).
            if (n == 0 || done == need || done % kAlign != 0)
                return done <= skip ? 0 : static_cast<ssize_t>(std::min(done - skip, len));
        }
        direct_.reset();
    }
    return pread_full(fd_, data, len, static_cast<off_t>(off));
}

int pwrite_full(int fd, const void* buf, size_t len, off_t off) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = ::pwrite(fd, static_cast<const char*>(buf) + done, len - done, off + static_cast<off_t>(done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        done += static_cast<size_t>(n);
    }
    return 0;
}

int write_full(int fd, const void* buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = ::write(fd, static_cast<const char*>(buf) + done, len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        done += static_cast<size_t>(n);
    }
    return 0;
}

int copy_range(int in, off_t in_off, int out, off_t out_off, uint64_t len) {
    loff_t i = in_off, o = out_off;
    uint64_t left = len;
    while (left > 0) {
        ssize_t c = ::copy_file_range(in, &i, out, &o, static_cast<size_t>(left), 0);
        if (c < 0 && errno == EINTR) continue;
        if (c < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) break;
        if (c < 0) return -errno;
        if (c == 0) return -EIO;  // the source is shorter than it said
        left -= static_cast<uint64_t>(c);
    }
    std::vector<char> buf(left ? 1 << 20 : 0);
    while (left > 0) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
        ssize_t n = pread_full(in, buf.data(), want, i);
        if (n < 0) return static_cast<int>(n);
        if (n == 0) return -EIO;
        if (int r = pwrite_full(out, buf.data(), static_cast<size_t>(n), o); r < 0) return r;
        i += n;
        o += n;
        left -= static_cast<uint64_t>(n);
    }
    return 0;
}

namespace {
// Beneath `dirfd` (member_path.hpp) unless it is AT_FDCWD; -errno on failure.
int open_regular(int dirfd, const std::string& rel, int flags, mode_t mode) {
    if (dirfd != AT_FDCWD) return member_path::open_file(dirfd, rel, flags, mode);
    const int fd = ::open(rel.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, mode);
    return fd < 0 ? -errno : fd;
}
}  // namespace

std::string read_file_at(int dirfd, const std::string& rel, size_t max_len) {
    const int r = open_regular(dirfd, rel, O_RDONLY, 0);
    if (r < 0) throw_errno(-r, rel, "cannot open");
    UniqueFd fd(r);
    // Sized by the file (one byte more tells a file that grew past the limit),
    // not by the limit: a limit of gigabytes must not cost gigabytes.
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) throw_errno(errno, rel, "cannot stat");
    std::string out(std::min<size_t>(max_len, static_cast<size_t>(st.st_size)) + 1, '\0');
    ssize_t n = pread_full(fd.get(), out.data(), out.size(), 0);
    if (n < 0) throw_errno(static_cast<int>(-n), rel, "cannot read");
    if (static_cast<size_t>(n) > max_len) throw Error(EFBIG, rel, "file is larger than expected: " + rel);
    out.resize(static_cast<size_t>(n));
    return out;
}

void write_file_atomic_at(int dirfd, const std::string& rel, const void* data, size_t len, mode_t mode) {
    const std::string tmp = rel + ".tmp";
    // A leftover (or planted) temporary is removed, never written through:
    // the new one is created exclusively.
    const int u = member_path::unlink(dirfd, tmp);
    if (u < 0 && u != -ENOENT) throw_errno(-u, tmp, "cannot remove");
    const int r = member_path::open_file(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (r < 0) throw_errno(-r, tmp, "cannot create");
    UniqueFd fd(r);
    if (int r = write_full(fd.get(), data, len); r < 0) throw_errno(-r, tmp, "cannot write");
    if (::fsync(fd.get()) < 0) throw_errno(errno, tmp, "cannot fsync");
    fd.reset();
    if (int rr = member_path::rename(dirfd, tmp, rel, 0); rr < 0) throw_errno(-rr, rel, "cannot rename into place");
    // The directory entry itself must survive a power cut too.
    const auto slash = rel.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : rel.substr(0, slash);
    UniqueFd d(member_path::open_dir(dirfd, dir));
    if (d) ::fsync(d.get());
}

}  // namespace nvrfs
