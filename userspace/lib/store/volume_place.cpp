// volume_place.cpp — the place check: is the file opened at a path the one the audit log recorded there?
#include "store/volume.hpp"
#include "store/volume_parts.hpp"

#include "base/member_path.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace nvrfs {
using namespace volume_parts;

void Volume::check_place(Handle& h) {
    if (!place_check_) return;
    auto why = place_verdict(h);
    if (!why) return;
    {
        // A create, rename, truncate or write session may have changed the
        // path or the file and not yet written its record: wait for those
        // in flight, then look again.
        std::unique_lock ex(place_mu_);
        why = place_verdict(h);
        if (why && !still_there(h)) throw Moved{};
    }
    if (!why) return;
    const std::string id = hex(h.file->hdr.id);
    bool first;
    {
        std::lock_guard lk(place_alerted_mu_);
        first = place_alerted_.insert(h.path + '\0' + id).second;
    }
    if (first) alerts_.raise(alert::TamperDetected, *why + "; the file is not opened", h.path);
    throw Error(EIO, h.path, fmt::format("{}: not the file the audit log recorded at this path", h.path));
}

std::optional<std::string> Volume::place_verdict(const Handle& h) {
    const bool settled = !written_elsewhere(h);
    std::shared_lock lk(h.file->mu);
    return place_check_(h.path, facts_locked(*h.file), settled);
}

bool Volume::written_elsewhere(const Handle& h) {
    std::lock_guard lk(opened_mu_);
    return std::any_of(opened_.begin(), opened_.end(),
                       [&](const auto& e) { return e.first != &h && e.first->file == h.file && e.first->writable; });
}

// Is the file `h` holds still the one at its path on the members?
bool Volume::still_there(const Handle& h, std::optional<size_t> except) {
    for (size_t i : holders(*h.file, false)) {
        if (i == except) continue;
        struct stat held {};
        if (::fstat(h.file->fds[i].get(), &held) < 0) continue;
        std::string rel;
        try {
            rel = located(h.path);
        } catch (const Error&) {
            return false;
        }
        return same_entry(held, set_.member(i).dirfd.get(), rel);
    }
    return true;
}

// Each writable member's copy of `rel`, opened into f.fds (`found`: what
// each open saw), one result per member. An unlink or rename reaches the
// members one after the other (under place_mu_ shared), so an open between
// two of them finds the copy on some only. With `settle` (the caller holds
// no place_mu_) such a difference is looked at again once those in flight
// are done: what is left is for combine() to judge.
std::vector<std::pair<size_t, int>> Volume::open_members(OpenFile& f, const std::string& rel, int extra_flags, mode_t mode,
                                                         const std::optional<SideFile>& side,
                                                         std::array<struct stat, kMaxMembers>& found, bool settle) {
    auto once = [&] {
        std::vector<std::pair<size_t, int>> results;
        f.sparse = false;  // of the copies this pass opens
        for (size_t i : set_.writable_members()) {
            const int root = set_.member(i).dirfd.get();
            int fd = put_side(root, side);
            if (fd == 0) fd = member_path::open_file(root, rel, O_RDWR | extra_flags, mode, &found[i]);
            if (fd == -EROFS && !(extra_flags & O_CREAT)) fd = member_path::open_file(root, rel, O_RDONLY, 0, &found[i]);
            results.emplace_back(i, fd < 0 ? fd : 0);
            f.fds[i].reset(fd < 0 ? -1 : fd);
            // Fewer blocks than bytes: the copy holds zero-form chunks (holes).
            if (fd >= 0 && static_cast<uint64_t>(found[i].st_blocks) * 512 < static_cast<uint64_t>(found[i].st_size))
                f.sparse = true;
        }
        return results;
    };
    auto results = once();
    const auto has = [&](int r) { return std::any_of(results.begin(), results.end(), [&](auto& p) { return p.second == r; }); };
    if (settle && has(0) && (has(-ENOENT) || has(-ENOTDIR))) {
        std::unique_lock ex(place_mu_);
        results = once();
    }
    return results;
}

}  // namespace nvrfs
