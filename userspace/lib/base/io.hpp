// io.hpp — file descriptors and complete reads/writes.
//
// UniqueFd owns a descriptor. The *_full helpers loop over short transfers and
// EINTR and report failure as a negative errno, because the mirror layer must
// collect one result per member rather than stop at the first exception.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <sys/types.h>
#include <utility>

namespace nvrfs {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }
    void reset(int fd = -1) noexcept;
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_ = -1;
};

// Bytes read (short only at end of file) or -errno.
ssize_t pread_full(int fd, void* buf, size_t len, off_t off);
// 0 or -errno.
int pwrite_full(int fd, const void* buf, size_t len, off_t off);
int write_full(int fd, const void* buf, size_t len);

// Copy len bytes from in (at in_off) to out (at out_off): copy_file_range where
// the kernel allows it, a read/write loop across file systems. 0 or -errno.
int copy_range(int in, off_t in_off, int out, off_t out_off, uint64_t len);

// Reads of a whole file once through (scrub, rebuild) that pass the page
// cache by (O_DIRECT) where the file system allows it: they cost the kernel
// one copy less, and do not push the recordings being played out of memory.
// Elsewhere (tmpfs, an O_DIRECT refusal) they are plain reads.
class UncachedReader {
public:
    explicit UncachedReader(int fd);
    // Up to len bytes at off (short only at end of file) into a buffer of
    // the reader's, valid until the next read; bytes read, or -errno.
    ssize_t read(uint64_t off, size_t len, uint8_t*& data);

private:
    struct Free {
        void operator()(uint8_t* p) const noexcept { std::free(p); }
    };
    static constexpr size_t kAlign = 4096;  // any logical block size up to a page
    int fd_;
    UniqueFd direct_;
    std::unique_ptr<uint8_t, Free> buf_;
    size_t cap_ = 0;
};

// Whole small files (keys, superblocks); throw Error on failure. `rel` is
// resolved beneath the directory `dirfd` without following any link
// (member_path.hpp); with AT_FDCWD it is an ordinary path, last link refused.
std::string read_file_at(int dirfd, const std::string& rel, size_t max_len);
// Write to rel.tmp, fsync, rename over rel, fsync the directory: never a torn
// file. `dirfd` is a directory; `rel` is resolved beneath it as above.
void write_file_atomic_at(int dirfd, const std::string& rel, const void* data, size_t len, mode_t mode);

}  // namespace nvrfs
