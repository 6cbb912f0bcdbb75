// volume_special.cpp — symlinks, fifos and sockets: stored files whose kind is authenticated.
#include "store/volume.hpp"
#include "store/volume_parts.hpp"

#include "store/tree.hpp"

#include <climits>
#include <nlohmann/json.hpp>

namespace nvrfs {
using namespace volume_parts;

// A fifo's or socket's mode is in its header and bound into its key: both are
// written again, under a new generation.
void Volume::chmod_special(const std::string& path, mode_t mode) {
    const auto h = pin(path);
    if (!h) throw_errno(ENOENT, path, "chmod");
    OpenFile& f = *h->file;
    std::unique_lock lk(f.mu);
    f.hdr.perms = static_cast<uint16_t>(mode & 07777);
    f.hdr.generation++;
    f.key = file_key(set_.keys().content, f.hdr);
    const Bytes img = empty_file_image(f.hdr, f.key);
    std::vector<std::pair<size_t, int>> results;
    for (size_t i : holders(f, true)) results.emplace_back(i, pwrite_full(f.fds[i].get(), img.data(), img.size(), 0));
    check(set_.combine("chmod", path, results), "chmod", path);
}

std::string Volume::make_special(const std::string& path, Kind kind, mode_t perms, const std::string& content, const Caller& who) {
    const std::string rel = stored(path);
    if (!make_room(stored_size(kFormatVersion, content.size()), set_.writable_members())) throw_errno(ENOSPC, path, "create");
    auto f = open_stored(path, rel, O_CREAT | O_EXCL, perms & 07777, &who, kind);
    try {
        if (!content.empty()) {
            std::unique_lock lk(f->mu);
            write_locked(*f, path, reinterpret_cast<const uint8_t*>(content.data()), 0, content.size());
        }
    } catch (...) {
        open_.release(f);
        for (size_t i : set_.writable_members()) {
            member_path::unlink(set_.member(i).dirfd.get(), rel);
            drop_side(set_.member(i).dirfd.get(), rel);
        }
        throw;
    }
    const std::string id = hex(f->hdr.id);
    open_.release(f);
    return id;
}

void Volume::symlink(const std::string& target, const std::string& path, const Caller& who) {
    std::shared_lock place(place_mu_);  // until its record is in the log and the members agree (list_dir)
    try {
        if (target.empty() || target.size() >= PATH_MAX) throw_errno(target.empty() ? ENOENT : ENAMETOOLONG, path, "symlink");
        const std::string id = make_special(path, Kind::Symlink, 0, target, who);
        audit("symlink", who, path, 0, [&](nlohmann::json& r) {
            r["target"] = target;
            r["id"] = id;
        });
    } catch (const Error& e) {
        audit("symlink", who, path, e.code(), [&](nlohmann::json& r) { r["target"] = target; });
        throw;
    }
}

std::string Volume::readlink(const std::string& path) {
    const auto h = pin(path);
    if (!h) throw_errno(ENOENT, path, "readlink");
    if (h->file->hdr.kind != Kind::Symlink) throw_errno(EINVAL, path, "readlink");
    std::string out(h->file->size.load(), '\0');
    if (!out.empty()) out.resize(read(*h, reinterpret_cast<uint8_t*>(out.data()), out.size(), 0));
    return out;
}

void Volume::mknod(const std::string& path, mode_t mode, const Caller& who) {
    if (S_ISREG(mode)) return release(create(path, mode & 07777, O_EXCL, who));
    // Device nodes would reach the member's devices through the mount.
    if (!S_ISFIFO(mode) && !S_ISSOCK(mode)) {
        audit("mknod", who, path, EPERM);
        throw_errno(EPERM, path, "mknod");
    }
    std::shared_lock place(place_mu_);  // until its record is in the log and the members agree (list_dir)
    try {
        const std::string id = make_special(path, S_ISFIFO(mode) ? Kind::Fifo : Kind::Socket, mode & 07777, {}, who);
        audit("mknod", who, path, 0, [&](nlohmann::json& r) {
            r["kind"] = S_ISFIFO(mode) ? "fifo" : "socket";
            r["id"] = id;
        });
    } catch (const Error& e) {
        audit("mknod", who, path, e.code());
        throw;
    }
}

}  // namespace nvrfs
