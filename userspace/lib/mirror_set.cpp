#include "mirror_set.hpp"

#include "error.hpp"
#include "names.hpp"
#include "tree.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace nvrfs {

const char* state_name(MemberState s) { return s == MemberState::Active ? "active" : "failed"; }

bool is_media_error(int err) {
    switch (err) {
        case EIO: case ENOSPC: case EDQUOT: case EROFS: case ENXIO: case ENODEV:
        case EBADF: case ESTALE: case ENOTCONN: case ENOMEDIUM: case EUCLEAN:
            return true;
        default:
            return false;
    }
}

std::unique_ptr<MirrorSet> MirrorSet::assemble(const std::vector<std::string>& paths, const SecretKey& host_key,
                                               const AssembleOptions& opt, std::vector<std::string>* notes) {
    if (paths.empty()) throw Error(EINVAL, "", "no members given (use --member DIR, at least two)");
    std::unique_ptr<MirrorSet> set(new MirrorSet());
    std::set<std::pair<dev_t, ino_t>> seen;
    for (const auto& p : paths) {
        UniqueFd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd) {
            int e = errno;
            if (opt.allow_degraded && (e == ENOENT || e == EIO || e == ENXIO)) {
                if (notes) notes->push_back(fmt::format("MemberMissing: {}: {}", p, std::strerror(e)));
                continue;
            }
            throw Error(e, p, fmt::format("member {}: {}", p, std::strerror(e)));
        }
        struct stat st {};
        ::fstat(fd.get(), &st);
        if (!seen.insert({st.st_dev, st.st_ino}).second)
            throw Error(EINVAL, p, fmt::format("member {} is listed twice", p));
        auto m = std::make_unique<Member>();
        m->path = p;
        m->sb = read_superblock(fd.get(), p);
        m->dirfd = std::move(fd);
        set->members_.push_back(std::move(m));
    }
    if (set->members_.empty()) throw Error(ENODEV, "", "no member of the set is present");

    const Member& first = *set->members_[0];
    for (const auto& m : set->members_) {
        if (m->sb.set_uuid != first.sb.set_uuid)
            throw Error(EINVAL, m->path,
                        fmt::format("member {} belongs to set {}, but {} belongs to set {}: refusing to mix sets", m->path,
                                    uuid_str(m->sb.set_uuid), first.path, uuid_str(first.sb.set_uuid)));
    }
    set->set_uuid_ = first.sb.set_uuid;
    set->keys_ = KeySet::derive(first.sb.unwrap_master(host_key, first.path));
    std::set<Uuid> uuids;
    for (const auto& m : set->members_) {
        // Every member must unwrap: a superblock re-wrapped under another key is foreign.
        (void)m->sb.unwrap_master(host_key, m->path);
        if (!m->sb.mac_ok(set->keys_))
            throw Error(EINVAL, m->path, fmt::format("member {}: superblock fails authentication (tampered)", m->path));
        if (!uuids.insert(m->sb.member_uuid).second)
            throw Error(EINVAL, m->path,
                        fmt::format("member {} has the same member UUID as another member (a copied disk?)", m->path));
    }

    // Stale members: their event counter lags. Resync them from a current one.
    uint64_t newest = 0;
    for (const auto& m : set->members_) newest = std::max(newest, m->sb.events);
    const Member* src = nullptr;
    for (const auto& m : set->members_)
        if (m->sb.events == newest) { src = m.get(); break; }
    for (auto& m : set->members_) {
        if (m->sb.events == newest) continue;
        if (!opt.resync) {
            m->stale = true;
            continue;
        }
        const std::string what = fmt::format("MemberResynced: {} was stale (events {} < {}); copied from {}", m->path,
                                             m->sb.events, newest, src->path);
        clear_dir_at(m->dirfd.get(), [](const std::string& n) { return n == kMetaDir; }, m->path);
        {
            UniqueFd meta(::openat(m->dirfd.get(), kMetaDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (!meta) throw_errno(errno, m->path + "/" + kMetaDir, "cannot open");
            clear_dir_at(meta.get(), [](const std::string& n) { return n == "superblock"; }, m->path + "/" + kMetaDir);
        }
        const uint64_t bytes = copy_tree_at(src->dirfd.get(), m->dirfd.get(),
                                            [](const std::string& rel) { return rel == kSuperblockPath; }, m->path);
        m->sb.events = newest;
        m->sb.dirty = src->sb.dirty;
        write_superblock(m->dirfd.get(), m->sb, set->keys_);
        if (notes) notes->push_back(fmt::format("{} ({} bytes)", what, bytes));
    }
    return set;
}

Uuid create_set(const std::vector<std::string>& members, const SecretKey& host_key) {
    if (members.size() < 2) throw Error(EINVAL, "", "a set needs at least two members (RAID 1)");
    std::vector<UniqueFd> fds;
    for (const auto& m : members) {
        ::mkdir(m.c_str(), 0700);
        UniqueFd fd(::open(m.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd) throw_errno(errno, m, "cannot open member");
        std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(::dup(fd.get())), ::closedir);
        while (dirent* e = d ? ::readdir(d.get()) : nullptr) {
            const std::string n = e->d_name;
            if (n != "." && n != ".." && n != "lost+found")
                throw Error(ENOTEMPTY, m, fmt::format("member {} is not empty (found '{}'): refusing to overwrite it", m, n));
        }
        fds.push_back(std::move(fd));
    }
    const SecretKey master = SecretKey::random(32);
    const KeySet keys = KeySet::derive(master);
    const Uuid set_uuid = new_uuid();
    DirIv root_iv{};
    random_bytes(root_iv);
    for (auto& fd : fds) {
        Superblock sb;
        sb.set_uuid = set_uuid;
        sb.member_uuid = new_uuid();
        sb.events = 1;
        sb.created = static_cast<uint64_t>(::time(nullptr));
        sb.wrap_master(master, host_key);
        write_superblock(fd.get(), sb, keys);
        write_file_atomic_at(fd.get(), kDirIvName, root_iv.data(), root_iv.size(), 0400);
        ::fchmod(fd.get(), 0755);
    }
    return set_uuid;
}

std::vector<size_t> MirrorSet::healthy_members() const {
    std::vector<size_t> out;
    for (size_t i = 0; i < members_.size(); ++i)
        if (healthy(i)) out.push_back(i);
    return out;
}

bool MirrorSet::alive(size_t idx) const {
    const Member& m = *members_[idx];
    struct stat st {};
    if (::fstat(m.dirfd.get(), &st) < 0 || st.st_nlink == 0) return false;
    return ::fstatat(m.dirfd.get(), kSuperblockPath, &st, 0) == 0;
}

std::vector<std::pair<size_t, int>> MirrorSet::run_parallel(const std::vector<size_t>& members,
                                                            const std::function<int(size_t)>& op) {
    std::vector<std::pair<size_t, int>> results(members.size());
    std::vector<size_t> slots(members.size());
    for (size_t k = 0; k < members.size(); ++k) slots[k] = k;
    // Created on first use, not at assembly: nvrfsd forks into the background
    // after assembling, and a fork keeps no threads.
    std::call_once(pool_once_, [this] { pool_ = std::make_unique<WorkerPool>(2 * (members_.size() - 1)); });
    pool_->run_all(slots, [&](size_t k) { results[k] = {members[k], op(members[k])}; });
    return results;
}

int MirrorSet::fan_out(const std::string& what, const std::string& path, const std::function<int(size_t, Member&)>& op) {
    std::vector<std::pair<size_t, int>> results;
    for (size_t i : healthy_members()) results.emplace_back(i, op(i, *members_[i]));
    return combine(what, path, results);
}

int MirrorSet::combine(const std::string& what, const std::string& path, const std::vector<std::pair<size_t, int>>& results) {
    if (results.empty()) return -EIO;  // no healthy member left
    size_t ok = 0;
    int logical = 0, first = 0;
    for (auto [i, r] : results) {
        if (r == 0) ++ok;
        else {
            if (!first) first = r;
            if (!logical && !is_media_error(-r) && alive(i)) logical = r;
        }
    }
    if (ok == results.size()) return 0;
    const std::string ctx = fmt::format("{} {}", what, path);
    if (ok > 0 || logical) {
        for (auto [i, r] : results) {
            if (r == 0) continue;
            if (is_media_error(-r) || !alive(i)) {
                fail(i, -r, ctx);
            } else if (ok > 0 && on_note_) {
                // The member answers but disagrees: inconsistent, not dead.
                on_note_("MemberInconsistent", fmt::format("{}: {} failed with {} on this member only", members_[i]->path, ctx, errno_name(-r)));
            }
        }
        return ok > 0 ? 0 : logical;
    }
    return first;
}

void MirrorSet::fail(size_t idx, int err, const std::string& context) {
    {
        std::lock_guard lk(mu_);
        Member& m = *members_[idx];
        if (m.state.load() == MemberState::Failed) return;
        // Never fail the last member: with no survivor there is nothing to go on with.
        size_t active = 0;
        for (auto& x : members_) active += x->state.load() == MemberState::Active;
        if (active <= 1) return;
        m.state = MemberState::Failed;
        m.errors++;
        m.fail_reason = fmt::format("{}: {}", context, std::strerror(err));
    }
    bump_events(true);
    if (on_fail_) on_fail_(idx, err, context);
}

void MirrorSet::bump_events(bool dirty) {
    std::lock_guard lk(mu_);
    uint64_t newest = 0;
    for (auto& m : members_) newest = std::max(newest, m->sb.events);
    for (auto& m : members_) {
        if (m->state.load() != MemberState::Active) continue;
        m->sb.events = newest + 1;
        m->sb.dirty = dirty;
        try {
            write_superblock(m->dirfd.get(), m->sb, keys_);
        } catch (const Error&) {
            // The next data operation on this member will fail it properly.
        }
    }
}

}  // namespace nvrfs
