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
bool Volume::still_there(const Handle& h) {
    for (size_t i : holders(*h.file, false)) {
        struct stat held {}, now {};
        if (::fstat(h.file->fds[i].get(), &held) < 0) continue;
        std::string rel;
        try {
            rel = located(h.path);
        } catch (const Error&) {
            return false;
        }
        if (member_path::stat(set_.member(i).dirfd.get(), rel, now) < 0) return false;
        return held.st_ino == now.st_ino && held.st_dev == now.st_dev;
    }
    return true;
}

}  // namespace nvrfs
