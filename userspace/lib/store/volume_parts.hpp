// volume_parts.hpp — what the volume's source files share (volume*.cpp);
// internal, not part of the volume's promise (volume.hpp).
#pragma once
#include "store/chunk_crypto.hpp"
#include "base/error.hpp"
#include "base/member_path.hpp"
#include "store/names.hpp"
#include "store/open_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <memory>
#include <optional>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace nvrfs::volume_parts {


inline constexpr size_t kIvCacheMax = 100000;

inline std::string join_rel(const std::string& dir, const std::string& name) { return dir == "." ? name : dir + "/" + name; }

inline int neg_errno() { return -errno; }

// Is the entry at `rel` beneath `root` the file `held` describes (an fstat
// of a descriptor nvrfsd holds)?
inline bool same_entry(const struct stat& held, int root, const std::string& rel) {
    struct stat now {};
    return member_path::stat(root, rel, now) == 0 && held.st_ino == now.st_ino && held.st_dev == now.st_dev;
}

// libfuse keeps a file that is unlinked while open under this name until its
// last handle closes (fuse_config.hard_remove = 0).
inline bool hidden_name(const std::string& path) {
    const size_t s = path.rfind('/');
    return path.compare(s == std::string::npos ? 0 : s + 1, 12, ".fuse_hidden") == 0;
}

inline const char* kind_name(Kind k) {
    switch (k) {
    case Kind::File: return "file";
    case Kind::Symlink: return "symlink";
    case Kind::Fifo: return "fifo";
    case Kind::Socket: return "socket";
    }
    return "?";
}

// The members' pages of what nvrfsd has read or written are let go once the
// plaintext is with the kernel or the bytes are on the disk: the FUSE page
// cache holds the plaintext, and a second, encrypted copy of every recording
// in memory only evicts what is worth keeping. Taking memory afresh is what
// costs most where free pages go back to a VM's host (issue 17,
// docs/performance.md). Pages still dirty or under write-out are kept.
// The page cache holds a file in folios of up to 2 MiB, and one that
// reaches past either end of the range is kept: the ends are rounded to
// 2 MiB (down, so that the range after this one starts where it ends).
inline void drop_pages(int fd, uint64_t from, uint64_t to) {
    constexpr uint64_t kFolioMax = 2 << 20;
    from &= ~(kFolioMax - 1);
    to &= ~(kFolioMax - 1);
    if (to <= from) return;  // a length of 0 would mean "to the end of the file"
    ::posix_fadvise(fd, static_cast<off_t>(from), static_cast<off_t>(to - from), POSIX_FADV_DONTNEED);
}

// The header of one member's copy, or nullopt (none, or not decodable).
inline std::optional<FileHeader> read_header(int root, const std::string& rel) {
    const int fd = member_path::open_file(root, rel, O_RDONLY);
    if (fd < 0) return std::nullopt;
    UniqueFd own(fd);
    uint8_t b[kHeaderSize];
    if (pread_full(fd, b, sizeof b, 0) != static_cast<ssize_t>(kHeaderSize)) return std::nullopt;
    return FileHeader::decode(b);
}

// What stat shows for a symlink, fifo or socket stored as a member file.
inline struct stat special_stat(struct stat st, const FileHeader& h, uint64_t size) {
    switch (h.kind) {
    case Kind::Symlink: st.st_mode = S_IFLNK | 0777; st.st_size = static_cast<off_t>(size); break;
    case Kind::Fifo: st.st_mode = S_IFIFO | h.perms; st.st_size = 0; break;
    case Kind::Socket: st.st_mode = S_IFSOCK | h.perms; st.st_size = 0; break;
    case Kind::File: break;
    }
    return st;
}

// A file with no data: its header and one sealed empty chunk (chunk_layout.hpp).
inline Bytes empty_file_image(const FileHeader& hdr, const SecretKey& key) {
    Bytes img(kHeaderSize + kChunkOverhead);
    const auto h = hdr.encode();
    std::memcpy(img.data(), h.data(), h.size());
    seal_chunk(key, hdr, 0, true, {}, img.data() + kHeaderSize);
    return img;
}

// In a version 1 file a chunk in the middle may still carry last=1 when a
// crash (or a killed daemon) came between appending new chunks and resealing
// the old last one. That is accepted: it cannot hide truncation, because the
// chunk that really ends the file must still authenticate as last. Version 2
// never reseals, so there it is refused.
inline bool open_stored_chunk(const SecretKey& key, const FileHeader& hdr, uint64_t idx, uint64_t last, ByteView stored,
                              uint8_t* out) {
    if (open_chunk(key, hdr, idx, idx == last, stored, out)) return true;
    return hdr.version == kFormatV1 && idx != last && stored.size() == kStoredChunk && open_chunk(key, hdr, idx, true, stored, out);
}
inline bool open_stored_chunk(const OpenFile& f, uint64_t idx, uint64_t last, ByteView stored, uint8_t* out) {
    return open_stored_chunk(f.key, f.hdr, idx, last, stored, out);
}

// Per-thread scratch buffers, one per use so nested uses never share. Reusing
// them spares every 1 MiB request an mmap, page faults and zero-filling.
enum Scratch { kWritePlain, kWriteSealed, kReadStored, kReadPlain, kScratchSlots };
inline uint8_t* scratch(Scratch slot, size_t n) {
    struct Buf {
        std::unique_ptr<uint8_t[]> p;
        size_t cap = 0;
    };
    thread_local Buf bufs[kScratchSlots];
    Buf& b = bufs[slot];
    if (b.cap < n) {
        b.p.reset(new uint8_t[n]);  // uninitialised on purpose: every byte used is written first
        b.cap = n;
    }
    return b.p.get();
}

// The stored (encrypted) names one member's copy of a directory holds.
struct Listing {
    bool ok = false;
    std::vector<std::string> stored;  // stored (encrypted) names, internal files left out
};

inline Listing list_stored(int root, const std::string& rel) {
    Listing out;
    const int fd = member_path::open_dir(root, rel);
    if (fd < 0) return out;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(fd), ::closedir);
    if (!d) {
        ::close(fd);
        return out;
    }
    out.ok = true;
    while (dirent* e = ::readdir(d.get())) {
        std::string_view n = e->d_name;
        if (n == "." || n == ".." || n == kDirIvName || (rel == "." && n == kMetaDir) || is_long_side(n)) continue;
        out.stored.emplace_back(n);
    }
    return out;
}


// The IV stored for a directory on one member: exactly 16 bytes in a regular file.
inline std::optional<DirIv> read_iv(int root, const std::string& ivrel) {
    const int fd = member_path::open_file(root, ivrel, O_RDONLY);
    if (fd < 0) return std::nullopt;
    UniqueFd own(fd);
    DirIv iv{};
    uint8_t extra;
    if (pread_full(fd, iv.data(), iv.size(), 0) != static_cast<ssize_t>(iv.size()) || pread_full(fd, &extra, 1, iv.size()) != 0)
        return std::nullopt;
    return iv;
}

inline int write_iv(int root, const std::string& ivrel, const DirIv& iv) {
    member_path::unlink(root, ivrel);
    const int fd = member_path::open_file(root, ivrel, O_WRONLY | O_CREAT | O_EXCL, 0400);
    if (fd < 0) return fd;
    UniqueFd own(fd);
    if (int r = write_full(fd, iv.data(), iv.size()); r < 0) return r;
    return ::fsync(fd) < 0 ? -errno : 0;
}


// A zero-form chunk's nonce and tag at chunk idx (n plaintext bytes); the
// body between stays a hole. `punch`: the body may hold older bytes, which
// are punched out (zeroed) first.
inline int write_zero_chunk(int fd, uint64_t idx, size_t n, const uint8_t* nonce, const uint8_t* tag, bool punch) {
    const off_t at = static_cast<off_t>(stored_offset(idx));
    if (punch && n > 0 && ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at + kGcmNonce, static_cast<off_t>(n)) < 0) {
        if (errno != EOPNOTSUPP) return -errno;
        const Bytes zeros(n);
        if (int r = pwrite_full(fd, zeros.data(), n, at + kGcmNonce); r < 0) return r;
    }
    if (int r = pwrite_full(fd, nonce, kGcmNonce, at); r < 0) return r;
    return pwrite_full(fd, tag, kGcmTag, at + kGcmNonce + static_cast<off_t>(n));
}

inline bool zero_body(const uint8_t* sealed, size_t sl) {
    return std::all_of(sealed + kGcmNonce, sealed + sl - kGcmTag, [](uint8_t b) { return b == 0; });
}


}  // namespace nvrfs::volume_parts
