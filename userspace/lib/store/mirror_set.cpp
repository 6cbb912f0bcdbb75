#include "store/mirror_set.hpp"

#include "base/error.hpp"
#include "base/member_path.hpp"
#include "store/names.hpp"
#include "store/tree.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <optional>
#include <set>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <unistd.h>

namespace nvrfs {

const char* state_name(MemberState s) {
    switch (s) {
        case MemberState::Active: return "active";
        case MemberState::Rebuilding: return "rebuilding";
        case MemberState::Spare: return "spare";
        case MemberState::Failed: return "failed";
        case MemberState::Removed: return "removed";
    }
    return "?";
}

bool is_media_error(int err) {
    switch (err) {
        case EIO: case ENOSPC: case EDQUOT: case EROFS: case ENXIO: case ENODEV:
        case EBADF: case ESTALE: case ENOTCONN: case ENOMEDIUM: case EUCLEAN:
            return true;
        default:
            return false;
    }
}

// Member roots are root-owned 0700 (docs/format.md, "Threat model"): no
// other account may reach a stored file, or it could swap one for a link or
// edit its recordings behind the audit log. A looser mode is tightened and
// said; a root owned by someone else is refused, since that account may
// already have planted anything.
static void secure_root(int fd, const struct stat& st, const std::string& path, std::vector<std::string>* notes) {
    if (st.st_uid != ::geteuid())
        throw Error(EPERM, path, fmt::format("member {} is owned by uid {}, not by the user nvrfsd runs as: "
                                             "refusing a member another account controls", path, st.st_uid));
    if ((st.st_mode & 07777) == 0700) return;
    if (::fchmod(fd, 0700) < 0) throw_errno(errno, path, "cannot set member mode to 0700");
    if (notes) notes->push_back(fmt::format("MemberPermissionsFixed: {} was mode {:04o}; set to 0700", path, st.st_mode & 07777));
}

std::unique_ptr<MirrorSet> MirrorSet::assemble(const std::vector<std::string>& paths, const SecretKey& host_key,
                                               const AssembleOptions& opt, std::vector<std::string>* notes) {
    return assemble(paths, [&](const Superblock& sb, const std::string& where) { return sb.unwrap_master(host_key, where); }, opt, notes);
}

std::unique_ptr<MirrorSet> MirrorSet::assemble(const std::vector<std::string>& paths, const Unwrap& unwrap,
                                               const AssembleOptions& opt, std::vector<std::string>* notes) {
    if (paths.empty()) throw Error(EINVAL, "", "no members given (use --member DIR, at least two)");
    std::unique_ptr<MirrorSet> set(new MirrorSet());
    std::vector<std::unique_ptr<Member>> found;
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
        secure_root(fd.get(), st, p, notes);
        auto m = std::make_unique<Member>();
        m->path = p;
        try {
            m->sb = read_superblock(fd.get(), p);
        } catch (const Error& e) {
            // One bad disk must not keep the recorder from starting when the
            // administrator allows a degraded start: the others carry the set.
            if (!opt.allow_degraded || e.code() == ENOENT) throw;
            if (notes) notes->push_back(fmt::format("TamperDetected: {}: {}; started without it (degraded)", p, e.what()));
            continue;
        }
        m->dirfd = std::move(fd);
        found.push_back(std::move(m));
    }
    if (found.empty()) throw Error(ENODEV, "", "no member of the set is present");
    if (found.size() > kMaxMembers) throw Error(EINVAL, "", fmt::format("at most {} members and spares", kMaxMembers));

    const Member& first = *found[0];
    for (const auto& m : found) {
        if (m->sb.set_uuid != first.sb.set_uuid)
            throw Error(EINVAL, m->path,
                        fmt::format("member {} belongs to set {}, but {} belongs to set {}: refusing to mix sets", m->path,
                                    uuid_str(m->sb.set_uuid), first.path, uuid_str(first.sb.set_uuid)));
    }
    set->set_uuid_ = first.sb.set_uuid;
    set->keys_ = KeySet::derive(unwrap(first.sb, first.path));
    std::set<Uuid> uuids;
    for (auto it = found.begin(); it != found.end();) {
        const auto& m = *it;
        // Every member must unwrap: a superblock re-wrapped under another key is foreign.
        (void)unwrap(m->sb, m->path);
        if (!m->sb.mac_ok(set->keys_)) {
            const std::string why = fmt::format("member {}: superblock fails authentication (tampered)", m->path);
            if (!opt.allow_degraded || found.size() < 2) throw Error(EINVAL, m->path, why);
            if (notes) notes->push_back(fmt::format("TamperDetected: {}; started without it (degraded)", why));
            it = found.erase(it);
            continue;
        }
        if (!uuids.insert(m->sb.member_uuid).second)
            throw Error(EINVAL, m->path,
                        fmt::format("member {} has the same member UUID as another member (a copied disk?)", m->path));
        ++it;
    }

    // Roles come from the superblocks. A member the administrator failed
    // stays out, stale as it is, until it is added back (a disk taken out
    // for its errors must not rejoin by a restart).
    for (auto& m : found) {
        if (m->sb.failed) {
            m->state = MemberState::Failed;
            const char* add = m->sb.role == MemberRole::Spare ? "spare add" : "member add";
            m->fail_reason = fmt::format("failed by the administrator before this mount; nvrctl {} takes it back", add);
            if (notes)
                notes->push_back(fmt::format("MemberFailed: {} stays out: the administrator failed it (nvrctl member fail); "
                                             "nvrctl {} {} takes it back, nvrctl member remove {} forgets it",
                                             m->path, add, m->path, m->path));
        } else if (m->sb.role == MemberRole::Spare) m->state = MemberState::Spare;
        else if (m->sb.rebuilding) m->state = MemberState::Rebuilding;
    }
    // Stale members: their event counter lags. Resync them from a current one.
    uint64_t newest = 0;
    const Member* src = nullptr;
    for (const auto& m : found)
        if (m->state == MemberState::Active && m->sb.events >= newest) newest = m->sb.events;
    for (const auto& m : found)
        if (m->state == MemberState::Active && m->sb.events == newest) { src = m.get(); break; }
    if (!src) throw Error(ENODEV, "", "no complete member: every data member is a spare, still being rebuilt, or failed by the administrator "
                                     "(nvrctl member add DIR takes one back)");
    for (auto& m : found) {
        if (m->state == MemberState::Spare || m->state == MemberState::Failed || m->sb.events == newest) continue;
        if (m->state == MemberState::Rebuilding) {
            // It missed writes while the set ran without it: start its rebuild over.
            m->sb.events = newest;
            continue;
        }
        if (!opt.resync) {
            m->stale = true;
            continue;
        }
        // Its copies are brought up to date by the online rebuild, which
        // copies only what authenticates and keeps the member's own authentic
        // chunks: a newer-looking member is never trusted blindly.
        const uint64_t had = m->sb.events;
        m->state = MemberState::Rebuilding;
        m->sb.rebuilding = true;
        m->sb.events = newest;
        write_superblock(m->dirfd.get(), m->sb, set->keys_);
        if (notes)
            notes->push_back(fmt::format("MemberResynced: {} was stale (events {} < {}); it is brought up to date from {} "
                                         "by a verifying rebuild",
                                         m->path, had, newest, src->path));
    }
    for (auto& m : found) {
        if (m->sb.role != MemberRole::Spare) set->raid_disks_++;  // a failed spare is no missing copy
        set->slots_[set->count_++] = std::move(m);
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
        // The mount's root shows mode 0755, owner root (volume.hpp, kRootAttrPath).
        write_file_atomic_at(fd.get(), kRootAttrPath, "755 0 0\n", 8, 0600);
        if (::fchmod(fd.get(), 0700) < 0) throw_errno(errno, "member", "cannot set member mode");
    }
    return set_uuid;
}

std::vector<size_t> MirrorSet::in_state(std::initializer_list<MemberState> states) const {
    std::vector<size_t> out;
    const size_t n = size();
    for (size_t i = 0; i < n; ++i) {
        const MemberState st = slots_[i]->state.load();
        for (MemberState w : states)
            if (st == w) out.push_back(i);
    }
    return out;
}

std::optional<size_t> MirrorSet::find(const std::string& path) const {
    struct stat want {};
    const bool have = ::stat(path.c_str(), &want) == 0;
    const size_t n = size();
    for (size_t i = 0; i < n; ++i) {
        if (slots_[i]->state.load() == MemberState::Removed) continue;  // its directory may be added again
        if (slots_[i]->path == path) return i;
        struct stat st {};
        if (have && ::fstat(slots_[i]->dirfd.get(), &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino) return i;
    }
    return std::nullopt;
}

bool MirrorSet::alive(size_t idx) const {
    const Member& m = *slots_[idx];
    struct stat st {};
    if (::fstat(m.dirfd.get(), &st) < 0 || st.st_nlink == 0) return false;
    return member_path::stat(m.dirfd.get(), kSuperblockPath, st) == 0 && S_ISREG(st.st_mode);
}

void MirrorSet::parallel_for(size_t n, const std::function<void(size_t)>& fn) {
    // Created on first use, not at assembly: nvrfsd forks into the background
    // after assembling, and a fork keeps no threads.
    std::call_once(pool_once_, [this] {
        pool_ = std::make_unique<WorkerPool>(std::max<size_t>(2, std::thread::hardware_concurrency()));
    });
    pool_->parallel_for(n, fn);
}

ReadAffinity::~ReadAffinity() {
    if (member_) member_->read_files--;
}

size_t ReadAffinity::pick(MirrorSet& set, const std::vector<size_t>& readers) {
    std::lock_guard lk(mu_);
    if (member_ && std::find(readers.begin(), readers.end(), index_) != readers.end()) return index_;
    size_t best = readers.at(0);
    for (size_t r : readers)
        if (set.member(r).read_files.load() < set.member(best).read_files.load()) best = r;
    if (member_) member_->read_files--;
    member_ = &set.member(best);
    member_->read_files++;
    index_ = best;
    return best;
}

int MirrorSet::fan_out(const std::string& what, const std::string& path, const std::function<int(size_t, Member&)>& op) {
    std::vector<std::pair<size_t, int>> results;
    for (size_t i : writable_members()) results.emplace_back(i, op(i, *slots_[i]));
    return combine(what, path, results);
}

int MirrorSet::combine(const std::string& what, const std::string& path, const std::vector<std::pair<size_t, int>>& results) {
    size_t ok = 0, active = 0;
    int logical = 0, first = 0;
    for (auto [i, r] : results) {
        const bool is_active = slots_[i]->state.load() == MemberState::Active;
        active += is_active;
        if (r == 0) ok += is_active;
        else if (is_active) {
            if (!first) first = r;
            if (!logical && !is_media_error(-r) && alive(i)) logical = r;
        }
    }
    if (active == 0) return -EIO;  // no complete member left
    const std::string ctx = fmt::format("{} {}", what, path);
    if (ok == active || ok > 0 || logical) {
        bool set_full = false;
        for (auto [i, r] : results) {
            if (r == 0) continue;
            const bool rebuilding = slots_[i]->state.load() == MemberState::Rebuilding;
            const bool full = -r == ENOSPC || -r == EDQUOT;
            if (full && !full_alone(i)) {
                // Full like its peers: the set is full, the member is fine.
                set_full = true;
            } else if (is_media_error(-r) || !alive(i)) {
                if (ok > 0 || logical || rebuilding) fail(i, -r, full ? ctx + " (full while its peers have room)" : ctx);
            } else if (member_path::is_tamper_errno(-r) && on_note_) {
                on_note_("TamperDetected", fmt::format("{}: {}: a stored entry was replaced by a link or special file; "
                                                       "not followed", slots_[i]->path, ctx));
            } else if (ok > 0 && !rebuilding && on_note_) {
                // The member answers but disagrees: inconsistent, not dead. (A
                // member being rebuilt lacks files until the rebuild reaches them.)
                on_note_("MemberInconsistent", fmt::format("{}: {} failed with {} on this member only", slots_[i]->path, ctx, errno_name(-r)));
            }
        }
        // Not on every member because the set is full: the caller is told.
        if (set_full) return -ENOSPC;
        // Every member holds a planted entry: the stored file is gone, not a link.
        if (ok == 0 && member_path::is_tamper_errno(-logical)) return -EIO;
        return ok > 0 ? 0 : logical;
    }
    // Every complete member failed alike (e.g. all full): the caller gets the
    // error, and a member being rebuilt that failed too is no worse off.
    return first;
}

bool MirrorSet::full_alone(size_t idx) const {
    // "Full alone": another active member has clearly more room (64 MiB and
    // a quarter more). Members written alike fill alike, within what a few
    // requests in flight or metadata make them differ.
    constexpr uint64_t kSlack = 64 << 20;
    struct statvfs s {};
    if (::fstatvfs(slots_[idx]->dirfd.get(), &s) < 0) return true;  // gone: not "full"
    const uint64_t mine = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
    for (size_t i = 0; i < size(); ++i) {
        if (i == idx || slots_[i]->state.load() != MemberState::Active) continue;
        if (::fstatvfs(slots_[i]->dirfd.get(), &s) < 0) continue;
        const uint64_t other = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
        if (other > mine + kSlack && other > mine + mine / 4) return true;
    }
    return false;
}

void MirrorSet::fail(size_t idx, int err, const std::string& context) {
    {
        std::lock_guard lk(mu_);
        Member& m = *slots_[idx];
        const MemberState st = m.state.load();
        if (st == MemberState::Failed || st == MemberState::Removed) return;
        // Never fail the last complete member: with no survivor there is nothing to go on with.
        if (st == MemberState::Active) {
            size_t active = 0;
            for (size_t i = 0; i < size(); ++i) active += slots_[i]->state.load() == MemberState::Active;
            if (active <= 1) return;
        }
        m.state = MemberState::Failed;
        m.errors++;
        m.fail_reason = fmt::format("{}: {}", context, std::strerror(err));
    }
    bump_events(true);
    if (on_fail_) on_fail_(idx, err, context);
}

void MirrorSet::fail_by_admin(size_t idx, const std::string& context) {
    fail(idx, ECANCELED, context);
    std::lock_guard lk(mu_);
    Member& m = *slots_[idx];
    if (m.state.load() != MemberState::Failed || m.sb.failed) return;
    m.sb.failed = true;
    write_sb(m);
}

void MirrorSet::write_sb(Member& m) {
    try {
        write_superblock(m.dirfd.get(), m.sb, keys_);
    } catch (const Error&) {
        // The next data operation on this member will fail it properly.
    }
}

uint64_t MirrorSet::events() const {
    std::lock_guard lk(mu_);
    uint64_t newest = 0;
    for (size_t i = 0; i < size(); ++i) {
        const MemberState st = slots_[i]->state.load();
        if (st == MemberState::Active || st == MemberState::Rebuilding) newest = std::max(newest, slots_[i]->sb.events);
    }
    return newest;
}

void MirrorSet::bump_events(bool dirty) {
    std::lock_guard lk(mu_);
    uint64_t newest = 0;
    for (size_t i = 0; i < size(); ++i) newest = std::max(newest, slots_[i]->sb.events);
    for (size_t i = 0; i < size(); ++i) {
        Member& m = *slots_[i];
        const MemberState st = m.state.load();
        if (st != MemberState::Active && st != MemberState::Rebuilding) continue;
        m.sb.events = newest + 1;
        m.sb.dirty = dirty;
        write_sb(m);
    }
}

size_t MirrorSet::add_member(const std::string& path, MemberState role, bool grow) {
    if (find(path)) throw Error(EEXIST, path, fmt::format("{} is already part of this set", path));
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw_errno(errno, path, "cannot open new member");
    Superblock sb;
    bool ours = false;
    try {
        sb = read_superblock(fd.get(), path);
        ours = sb.set_uuid == set_uuid_ && sb.mac_ok(keys_);
        if (!ours) throw Error(EINVAL, path, fmt::format("{} belongs to another nvrfs set; refusing to overwrite it", path));
    } catch (const Error& e) {
        if (e.code() != ENOENT) throw;
        std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(::dup(fd.get())), ::closedir);
        while (dirent* e2 = d ? ::readdir(d.get()) : nullptr) {
            const std::string n = e2->d_name;
            if (n != "." && n != ".." && n != "lost+found")
                throw Error(ENOTEMPTY, path, fmt::format("{} is not empty (found '{}'): refusing to overwrite it", path, n));
        }
    }
    // A spare must be able to hold what a member holds.
    struct statvfs want {}, have {};
    for (size_t i : healthy_members()) {
        if (::fstatvfs(slots_[i]->dirfd.get(), &want) < 0) continue;
        const uint64_t used = (uint64_t(want.f_blocks) - want.f_bfree) * want.f_frsize;
        if (::fstatvfs(fd.get(), &have) == 0 && uint64_t(have.f_blocks) * have.f_frsize < used)
            throw Error(ENOSPC, path, fmt::format("{} is too small: {} bytes, but the set already holds {} bytes", path,
                                                  uint64_t(have.f_blocks) * have.f_frsize, used));
        break;
    }
    std::lock_guard lk(mu_);
    if (size() >= kMaxMembers) throw Error(ENOSPC, path, fmt::format("a set has at most {} members and spares", kMaxMembers));
    auto m = std::make_unique<Member>();
    m->path = path;
    if (!ours) {
        sb.set_uuid = set_uuid_;
        sb.member_uuid = new_uuid();
        sb.created = static_cast<uint64_t>(::time(nullptr));
    }
    // Copy the wrapped key from a current member: the host key is not kept in memory.
    const Member& ref = *slots_[healthy_members().at(0)];
    sb.wrap_nonce = ref.sb.wrap_nonce;
    sb.wrapped_key = ref.sb.wrapped_key;
    sb.wrap_tag = ref.sb.wrap_tag;
    sb.events = ref.sb.events;
    sb.role = role == MemberState::Spare ? MemberRole::Spare : MemberRole::Data;
    sb.rebuilding = role == MemberState::Rebuilding;
    sb.failed = false;  // a member the administrator failed, taken back
    sb.dirty = ref.sb.dirty;
    m->sb = sb;
    m->state = role;
    if (::fchmod(fd.get(), 0700) < 0) throw_errno(errno, path, "cannot set member mode");
    m->dirfd = std::move(fd);
    write_superblock(m->dirfd.get(), m->sb, keys_);
    const size_t idx = size();
    slots_[idx] = std::move(m);
    count_.store(idx + 1, std::memory_order_release);
    if (grow) raid_disks_++;
    return idx;
}

void MirrorSet::set_state(size_t idx, MemberState s) {
    std::lock_guard lk(mu_);
    Member& m = *slots_[idx];
    m.sb.role = s == MemberState::Spare ? MemberRole::Spare : MemberRole::Data;
    m.sb.rebuilding = s == MemberState::Rebuilding;
    if (s == MemberState::Active || s == MemberState::Rebuilding) {
        uint64_t newest = 0;
        for (size_t i = 0; i < size(); ++i)
            if (slots_[i]->state.load() == MemberState::Active) newest = std::max(newest, slots_[i]->sb.events);
        m.sb.events = newest;
    }
    m.state = s;
    write_sb(m);
}

void MirrorSet::remove_member(size_t idx) {
    std::lock_guard lk(mu_);
    Member& m = *slots_[idx];
    const MemberState st = m.state.load();
    if (st != MemberState::Failed && st != MemberState::Spare)
        throw Error(EBUSY, m.path, fmt::format("{} is {}: fail it first (nvrctl member fail)", m.path, state_name(st)));
    m.state = MemberState::Removed;
}

}  // namespace nvrfs
