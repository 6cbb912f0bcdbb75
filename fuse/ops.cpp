#include "ops.hpp"

#include "daemon.hpp"
#include "base/error.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <optional>
#include <vector>

namespace nvrfs {
namespace {

Daemon& daemon() { return *static_cast<Daemon*>(fuse_get_context()->private_data); }
Volume& vol() { return *daemon().vol; }
Handle* handle(fuse_file_info* fi) { return fi ? reinterpret_cast<Handle*>(fi->fh) : nullptr; }
// libfuse passes no path for an open file that has none any more (unlinked
// while open, its directory removed); the handle then says which file.
std::string path_of(const char* path, fuse_file_info* fi) {
    if (path) return path;
    if (Handle* h = handle(fi)) return h->path;
    throw Error(ESTALE, "", "no path and no open file");
}

// A write-only open (how recorders write: ffmpeg, dd) gets FOPEN_DIRECT_IO:
// its writes go from the writer's buffer to nvrfsd without a plaintext copy
// in the page cache that nobody reads (and without taking pages for it). It
// changes nothing of what a write acknowledges, and a write-only descriptor
// cannot be mmap'ed anyway. Only when the kernel drops other opens' cached
// pages of the range it writes (Linux 6.6, FUSE 7.39: commit 80e4f25262f9);
// on older kernels a reader of the same file would see stale pages.
void open_mode(fuse_file_info* fi) {
    fi->direct_io = daemon().direct_writes && (fi->flags & O_ACCMODE) == O_WRONLY;
}

Caller caller() {
    const fuse_context* c = fuse_get_context();
    return Caller::of(c->uid, c->gid, c->pid, &daemon().user_names);
}

template <class F>
int guard(F&& f) noexcept {
    try {
        return f();
    } catch (const Error& e) {
        return -e.code();
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;  // never EPERM for a failure we do not understand
    }
}

void* op_init(fuse_conn_info* conn, fuse_config* cfg) {
    cfg->use_ino = 0;
    cfg->hard_remove = 0;  // an open file unlinked is kept (hidden) until its last handle closes
    cfg->entry_timeout = 1.0;
    cfg->attr_timeout = 1.0;
    cfg->negative_timeout = 0;
    conn->max_write = 1 << 20;
    // Attributes with every listing, not only its first piece: a recorder's
    // directories are listed to be stat'ed (ls -l, retention scripts).
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    // Writeback caching would acknowledge writes before they are sealed and
    // mirrored; splice buys nothing as every byte is encrypted in memory anyway.
    conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    daemon().direct_writes = conn->proto_major > 7 || (conn->proto_major == 7 && conn->proto_minor >= 39);
    daemon().fuse_initialized = true;
    return fuse_get_context()->private_data;
}

int op_getattr(const char* path, struct stat* st, fuse_file_info* fi) {
    return guard([&] {
        *st = vol().getattr(path_of(path, fi), handle(fi));
        return 0;
    });
}

// A directory's listing, taken when a pass over it starts (offset 0) and
// served from here in the pieces the kernel asks for. Giving libfuse each
// entry's offset is what lets it pass the attributes on (READDIRPLUS), so
// that `ls -l` of a camera directory needs no lookup per file.
struct DirListing {
    std::vector<std::pair<std::string, std::optional<struct stat>>> entries;
};

int op_opendir(const char*, fuse_file_info* fi) {
    auto* d = new (std::nothrow) DirListing;
    if (!d) return -ENOMEM;
    fi->fh = reinterpret_cast<uint64_t>(d);
    return 0;
}

int op_releasedir(const char*, fuse_file_info* fi) {
    delete reinterpret_cast<DirListing*>(fi->fh);
    return 0;
}

int op_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t off, fuse_file_info* fi, fuse_readdir_flags flags) {
    return guard([&] {
        auto& d = *reinterpret_cast<DirListing*>(fi->fh);
        if (off == 0) {
            if (flags & FUSE_READDIR_PLUS) {
                d.entries = vol().readdir_plus(path);
            } else {
                d.entries.clear();
                for (auto& n : vol().readdir(path)) d.entries.emplace_back(std::move(n), std::nullopt);
            }
        }
        // Offsets: "." is 1, ".." is 2, entries[i] is i + 3 (the offset of the next one).
        const auto none = static_cast<fuse_fill_dir_flags>(0);
        for (auto k = static_cast<size_t>(std::max<off_t>(off, 0)); k < d.entries.size() + 2; ++k) {
            const bool dot = k < 2;
            const auto& st = dot ? std::nullopt : d.entries[k - 2].second;
            const char* name = dot ? (k == 0 ? "." : "..") : d.entries[k - 2].first.c_str();
            if (fill(buf, name, st ? &*st : nullptr, static_cast<off_t>(k + 1), st ? FUSE_FILL_DIR_PLUS : none)) break;
        }
        return 0;
    });
}

int op_readlink(const char* path, char* buf, size_t size) {
    return guard([&] {
        if (size == 0) return -EINVAL;
        const std::string t = vol().readlink(path);
        const size_t n = std::min(t.size(), size - 1);
        std::memcpy(buf, t.data(), n);
        buf[n] = '\0';
        return 0;
    });
}

int op_symlink(const char* target, const char* path) {
    return guard([&] {
        vol().symlink(target, path, caller());
        return 0;
    });
}

int op_mknod(const char* path, mode_t mode, dev_t) {
    return guard([&] {
        vol().mknod(path, mode, caller());
        return 0;
    });
}

// Hard links are not offered: every stored file is one name (docs/format.md).
int op_link(const char*, const char*) { return -EPERM; }

int op_mkdir(const char* path, mode_t mode) {
    return guard([&] {
        vol().mkdir(path, mode, caller());
        return 0;
    });
}

int op_rmdir(const char* path) {
    return guard([&] {
        vol().rmdir(path, caller());
        return 0;
    });
}

int op_unlink(const char* path) {
    return guard([&] {
        vol().unlink(path, caller());
        return 0;
    });
}

int op_rename(const char* from, const char* to, unsigned int flags) {
    return guard([&] {
        vol().rename(from, to, flags, caller());
        return 0;
    });
}

int op_chmod(const char* path, mode_t mode, fuse_file_info* fi) {
    return guard([&] {
        vol().chmod(path_of(path, fi), mode, handle(fi));
        return 0;
    });
}

int op_chown(const char* path, uid_t uid, gid_t gid, fuse_file_info* fi) {
    return guard([&] {
        vol().chown(path_of(path, fi), uid, gid, handle(fi));
        return 0;
    });
}

int op_utimens(const char* path, const struct timespec ts[2], fuse_file_info* fi) {
    return guard([&] {
        vol().utimens(path_of(path, fi), ts, handle(fi));
        return 0;
    });
}

int op_truncate(const char* path, off_t size, fuse_file_info* fi) {
    return guard([&] {
        if (size < 0) return -EINVAL;
        vol().truncate(path_of(path, fi), static_cast<uint64_t>(size), handle(fi), caller());
        return 0;
    });
}

int op_create(const char* path, mode_t mode, fuse_file_info* fi) {
    return guard([&] {
        fi->fh = reinterpret_cast<uint64_t>(vol().create(path, mode, fi->flags, caller()).release());
        open_mode(fi);
        return 0;
    });
}

int op_open(const char* path, fuse_file_info* fi) {
    return guard([&] {
        const bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
        const fuse_context* c = fuse_get_context();
        // Only write sessions are audited; reads skip the user-name lookup.
        const Caller who = writable ? caller() : Caller{c->uid, c->gid, c->pid, "", ""};
        fi->fh = reinterpret_cast<uint64_t>(vol().open(path, fi->flags, who).release());
        open_mode(fi);
        return 0;
    });
}

int op_read(const char*, char* buf, size_t size, off_t off, fuse_file_info* fi) {
    return guard([&] {
        return static_cast<int>(vol().read(*handle(fi), reinterpret_cast<uint8_t*>(buf), size, static_cast<uint64_t>(off)));
    });
}

int op_write(const char*, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
    return guard([&] {
        return static_cast<int>(vol().write(*handle(fi), reinterpret_cast<const uint8_t*>(buf), size, static_cast<uint64_t>(off)));
    });
}

int op_fsync(const char*, int datasync, fuse_file_info* fi) {
    return guard([&] {
        vol().fsync(*handle(fi), datasync != 0);
        return 0;
    });
}

int op_fallocate(const char*, int mode, off_t off, off_t len, fuse_file_info* fi) {
    return guard([&] {
        if (off < 0 || len <= 0) return -EINVAL;
        vol().fallocate(*handle(fi), mode, static_cast<uint64_t>(off), static_cast<uint64_t>(len), caller());
        return 0;
    });
}

int op_release(const char*, fuse_file_info* fi) {
    return guard([&] {
        vol().release(std::unique_ptr<Handle>(handle(fi)));
        return 0;
    });
}

int op_statfs(const char*, struct statvfs* st) {
    return guard([&] {
        *st = vol().statfs();
        return 0;
    });
}

const fuse_operations kOps = [] {
    fuse_operations o{};
    o.init = op_init;
    o.getattr = op_getattr;
    o.opendir = op_opendir;
    o.readdir = op_readdir;
    o.releasedir = op_releasedir;
    o.readlink = op_readlink;
    o.symlink = op_symlink;
    o.mknod = op_mknod;
    o.link = op_link;
    o.mkdir = op_mkdir;
    o.rmdir = op_rmdir;
    o.unlink = op_unlink;
    o.rename = op_rename;
    o.chmod = op_chmod;
    o.chown = op_chown;
    o.utimens = op_utimens;
    o.truncate = op_truncate;
    o.create = op_create;
    o.open = op_open;
    o.read = op_read;
    o.write = op_write;
    o.fsync = op_fsync;
    // No flush: writes are sealed and on the members before they are
    // answered, so a close has nothing to push; without the op the kernel
    // stops sending FLUSH, a round trip less per close.
    o.release = op_release;
    o.fallocate = op_fallocate;
    o.statfs = op_statfs;
    return o;
}();

}  // namespace

const fuse_operations& nvrfs_operations() { return kOps; }

}  // namespace nvrfs
