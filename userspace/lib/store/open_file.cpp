#include "store/open_file.hpp"

namespace nvrfs {

std::shared_ptr<OpenFile> OpenFileTable::acquire(const FileId& id, std::shared_ptr<OpenFile> fresh) {
    std::lock_guard lk(mu_);
    auto [it, inserted] = files_.try_emplace(id, std::move(fresh));
    it->second->refs++;
    return it->second;
}

void OpenFileTable::release(const std::shared_ptr<OpenFile>& f) {
    std::lock_guard lk(mu_);
    if (--f->refs > 0) return;
    auto it = files_.find(f->hdr.id);
    if (it != files_.end() && it->second == f) files_.erase(it);
}

}  // namespace nvrfs
