// volume_track.cpp — which paths are open, and which are being created.
#include "store/volume.hpp"
#include "base/plain_path.hpp"

#include <algorithm>

namespace nvrfs {

void Volume::track_open(const Handle& h) {
    std::lock_guard lk(opened_mu_);
    opened_[&h] = h.path;
}

std::string Volume::name_now(const Handle& h) {
    std::lock_guard lk(opened_mu_);
    const auto it = opened_.find(&h);
    return it != opened_.end() ? it->second : h.path;
}

bool Volume::is_open(const std::string& path, bool for_writing) {
    std::lock_guard lk(opened_mu_);
    return creating_.count(path) > 0 ||
           std::any_of(opened_.begin(), opened_.end(),
                       [&](const auto& e) { return e.second == path && (!for_writing || e.first->writable); });
}

size_t Volume::open_writers() {
    std::lock_guard lk(opened_mu_);
    return static_cast<size_t>(std::count_if(opened_.begin(), opened_.end(), [](const auto& e) { return e.first->writable; }));
}

// Open files follow a rename of themselves or of a directory above them, so
// recycling and the open-but-unlinked rules see their current names.
void Volume::track_rename(const std::string& from, const std::string& to, bool exchange) {
    std::lock_guard lk(opened_mu_);
    for (auto& [h, p] : opened_) {
        // An orphan left its directory when that was removed: a directory
        // made and renamed later under the old name does not carry it.
        if (orphans_.count(p)) continue;
        if (auto n = rebased(p, from, to)) p = *n;
        else if (exchange)
            if (auto m = rebased(p, to, from)) p = *m;
    }
}

Volume::Creating::Creating(Volume& v, std::string path) : v_(v), path_(std::move(path)) {
    std::lock_guard lk(v_.opened_mu_);
    v_.creating_.insert(path_);
}

Volume::Creating::~Creating() {
    {
        std::lock_guard lk(v_.opened_mu_);
        v_.creating_.erase(v_.creating_.find(path_));
    }
    v_.created_.notify_all();
}

void Volume::await_create(const std::string& path) {
    std::unique_lock lk(opened_mu_);
    created_.wait(lk, [&] { return creating_.count(path) == 0; });
}

// Every such change holds place_mu_ shared until its record is written.
void Volume::settle_records() { std::unique_lock ex(place_mu_); }

// ---- renames during a rebuild --------------------------------------------

void Volume::begin_rebuild_notes(bool fresh, std::function<void()> on_first) {
    std::lock_guard lk(renamed_mu_);
    if (fresh) renamed_.clear(), renamed_seen_ = false;
    on_first_renamed_ = std::move(on_first);
    if (renamed_seen_ && on_first_renamed_) on_first_renamed_();  // noted before this run began (a resume)
}

void Volume::end_rebuild_notes() {
    std::lock_guard lk(renamed_mu_);
    on_first_renamed_ = nullptr;
}

void Volume::note_renamed(const std::string& path) {
    std::lock_guard lk(renamed_mu_);
    renamed_.insert(path);
    if (!renamed_seen_) {
        renamed_seen_ = true;
        if (on_first_renamed_) on_first_renamed_();
    }
}

std::vector<std::string> Volume::take_renamed() {
    std::lock_guard lk(renamed_mu_);
    std::vector<std::string> out(renamed_.begin(), renamed_.end());  // sorted: a directory before what is in it
    renamed_.clear();
    return out;
}

bool Volume::unless_renamed(const std::function<void()>& fn) {
    std::lock_guard lk(renamed_mu_);
    if (renamed_seen_) return false;
    fn();
    return true;
}

bool Volume::finish_rebuild(const std::function<void()>& fn) {
    std::unique_lock place(place_mu_);  // renames hold it shared until they are noted
    std::lock_guard lk(renamed_mu_);
    if (!renamed_.empty()) return false;
    fn();
    renamed_seen_ = false;
    on_first_renamed_ = nullptr;
    return true;
}

}  // namespace nvrfs
