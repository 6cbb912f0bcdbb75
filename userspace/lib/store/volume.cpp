// volume.cpp — the volume: construction, stored paths and encrypted names (volume.hpp).
#include "store/volume.hpp"
#include "store/volume_parts.hpp"

#include "base/plain_path.hpp"
#include "store/tree.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/falloc.h>
#include <nlohmann/json.hpp>

namespace nvrfs {
using namespace volume_parts;

Volume::Volume(MirrorSet& set, AuditLog& log, Alerts& alerts)
    : set_(set), log_(log), alerts_(alerts), names_(set.keys().names) {
    // Files unlinked while open whose directory was removed: nothing is open
    // at mount, so whatever is left there was already deleted.
    for (size_t i : set_.writable_members()) {
        for (const auto& n : list_stored(set_.member(i).dirfd.get(), kOrphanDir).stored)
            member_path::unlink(set_.member(i).dirfd.get(), join_rel(kOrphanDir, n));
        member_path::rmdir(set_.member(i).dirfd.get(), kOrphanDir);
    }
    for (size_t i : set_.healthy_members()) {
        try {
            const std::string t = read_file_at(set_.member(i).dirfd.get(), kRootAttrPath, 64);
            unsigned mode = 0, uid = 0, gid = 0;
            char end = 0;
            if (std::sscanf(t.c_str(), "%o %u %u%c", &mode, &uid, &gid, &end) >= 3 && mode <= 07777) {
                root_attr_ = {static_cast<mode_t>(mode), uid, gid};
                break;
            }
        } catch (const Error&) {
        }
    }
}

// The mount's root is the members' root directory, which stays root-only
// 0700 (no account may reach stored files); the mode and owner it shows are
// kept beside the superblock instead.
void Volume::set_root_attr(std::optional<mode_t> mode, std::optional<uid_t> uid, std::optional<gid_t> gid) {
    std::lock_guard lk(root_mu_);
    RootAttr a = root_attr_;
    if (mode) a.mode = *mode & 07777;
    if (uid && *uid != static_cast<uid_t>(-1)) a.uid = *uid;
    if (gid && *gid != static_cast<gid_t>(-1)) a.gid = *gid;
    check(set_.fan_out("chmod", "/", [&](size_t, Member& m) { return write_root_attr(m.dirfd.get(), a); }), "chmod", "/");
    root_attr_ = a;
}

int Volume::write_root_attr(int root, const RootAttr& a) {
    const std::string t = fmt::format("{:o} {} {}\n", a.mode, a.uid, a.gid);
    try {
        write_file_atomic_at(root, kRootAttrPath, t.data(), t.size(), 0600);
        return 0;
    } catch (const Error& e) {
        return -e.code();
    }
}

void Volume::check(int r, const std::string& what, const std::string& path) {
    if (r < 0) throw_errno(-r, path, what);
}

void Volume::audit(const std::string& event, const Caller& who, const std::string& path, int err,
                   const std::function<void(nlohmann::json&)>& extra) {
    auto rec = audit_record(event, who, path, err);
    if (extra) extra(rec);
    if (event == "write" || event == "truncate") {
        // Unlinked while open, its directory removed since (orphan()): it has
        // no name any more, and its records must not give it one back.
        std::lock_guard lk(opened_mu_);
        if (orphans_.count(path)) rec["orphaned"] = true;
    }
    log_.append(std::move(rec));
}

// ---- names ---------------------------------------------------------------

std::vector<size_t> Volume::holders(const OpenFile& f, bool writable) const {
    std::vector<size_t> out;
    for (size_t i : writable ? set_.writable_members() : set_.healthy_members())
        if (f.fds[i]) out.push_back(i);
    return out;
}


DirIv Volume::diriv(const std::string& plain_dir, const std::string& stored_dir) {
    {
        std::lock_guard lk(iv_mu_);
        if (auto it = ivs_.find(plain_dir); it != ivs_.end()) return it->second;
    }
    // Every member's IV is read and compared: one member's altered IV must not
    // hide a directory's names, nor get new names sealed under it.
    const std::string rel = join_rel(stored_dir, kDirIvName);
    struct Cand {
        size_t member;
        std::optional<DirIv> iv;
    };
    std::vector<Cand> cands;
    size_t dirs = 0, missing = 0;
    for (size_t i : set_.healthy_members()) {
        const int root = set_.member(i).dirfd.get();
        struct stat st {};
        const int sr = member_path::stat(root, stored_dir, st);
        if (sr == -ENOENT) {
            ++missing;
            continue;
        }
        if (sr == 0 && !S_ISDIR(st.st_mode)) {
            if (S_ISREG(st.st_mode)) throw_errno(ENOTDIR, plain_dir, "not a directory");
            continue;  // a planted link or device: not this member's directory
        }
        ++dirs;
        cands.push_back({i, read_iv(root, rel)});
    }
    if (dirs == 0 && missing > 0) throw_errno(ENOENT, plain_dir, "no such directory");

    // The authentic IV is the one under which the directory's names decrypt
    // (AES-SIV authenticates every name); ties go to the IV most members hold,
    // then to the first member's.
    std::vector<DirIv> distinct;
    bool differ = false;
    for (const auto& c : cands) {
        if (!c.iv) differ = true;
        else if (std::find(distinct.begin(), distinct.end(), *c.iv) == distinct.end()) distinct.push_back(*c.iv);
    }
    differ |= distinct.size() > 1;
    std::optional<DirIv> best;
    size_t best_names = 0, best_votes = 0;
    for (const auto& iv : distinct) {
        size_t votes = 0, names = 0;
        for (const auto& o : cands) votes += o.iv == iv;
        if (distinct.size() > 1)
            for (const auto& o : cands)
                for (const auto& n : list_stored(set_.member(o.member).dirfd.get(), stored_dir).stored)
                    names += entry_name(set_.member(o.member).dirfd.get(), stored_dir, iv, n).has_value();
        if (!best || names > best_names || (names == best_names && votes > best_votes)) {
            best = iv;
            best_names = names;
            best_votes = votes;
        }
    }
    if (!best) {
        alerts_.raise(alert::TamperDetected, fmt::format("directory {} has no readable directory IV on any member", plain_dir), plain_dir);
        throw Error(EIO, plain_dir, "directory IV missing: " + plain_dir);
    }
    if (differ) {
        // Only names decrypt under the right IV, so the copy chosen above is
        // authenticated by the directory's own entries before it is copied.
        std::vector<std::string> fixed;
        for (const auto& c : cands)
            if (c.iv != best && write_iv(set_.member(c.member).dirfd.get(), rel, *best) == 0) fixed.push_back(set_.member(c.member).path);
        alerts_.raise(alert::TamperDetected,
                      fmt::format("directory {}: its directory IV differed between members; repaired on {} from the copy "
                                  "under which its {} names authenticate",
                                  plain_dir, fmt::join(fixed, ", "), best_names),
                      plain_dir);
    }
    std::lock_guard lk(iv_mu_);
    if (ivs_.size() > kIvCacheMax) ivs_.clear();
    ivs_[plain_dir] = *best;
    return *best;
}

void Volume::forget_dirivs() {
    std::lock_guard lk(iv_mu_);
    ivs_.clear();
}

std::string Volume::stored(const std::string& path) {
    if (path == "/" || path.empty()) return ".";
    std::string plain = "/", rel = ".";
    size_t pos = 1;
    while (pos <= path.size()) {
        size_t next = path.find('/', pos);
        if (next == std::string::npos) next = path.size();
        const std::string comp = path.substr(pos, next - pos);
        if (!comp.empty()) {
            rel = join_rel(rel, member_name(names_.encrypt(diriv(plain, rel), comp)));
            plain = child_path(plain, comp);
        }
        pos = next + 1;
    }
    return rel;
}

namespace {

// Is the last component of a member path the long-name form?
bool long_entry(const std::string& rel) {
    const size_t slash = rel.rfind('/');
    return is_long_name(slash == std::string::npos ? std::string_view(rel) : std::string_view(rel).substr(slash + 1));
}

}  // namespace

std::optional<Volume::SideFile> Volume::side_of(const std::string& path, const std::string& rel) {
    if (!long_entry(rel)) return std::nullopt;
    const size_t slash = rel.rfind('/');
    const size_t ps = path.rfind('/');
    const std::string parent = ps == 0 ? "/" : path.substr(0, ps);
    const std::string prel = slash == std::string::npos ? "." : rel.substr(0, slash);
    return SideFile{rel + std::string(kLongSuffix), names_.encrypt(diriv(parent, prel), path.substr(ps + 1))};
}

int Volume::put_side(int root, const std::optional<SideFile>& side) {
    if (!side) return 0;
    try {
        write_file_atomic_at(root, side->rel, side->encrypted.data(), side->encrypted.size(), 0400);
        return 0;
    } catch (const Error& e) {
        return -e.code();
    }
}

void Volume::drop_side(int root, const std::string& rel) {
    if (long_entry(rel)) member_path::unlink(root, rel + std::string(kLongSuffix));
}

std::optional<std::string> Volume::entry_name(int root, const std::string& dir_rel, const DirIv& iv, const std::string& n) {
    if (!is_long_name(n)) return names_.decrypt(iv, n);
    std::string enc;
    try {
        enc = read_file_at(root, join_rel(dir_rel, n + std::string(kLongSuffix)), 1024);
    } catch (const Error&) {
        return std::nullopt;
    }
    if (member_name(enc) != n) return std::nullopt;  // a side file moved from another entry
    return names_.decrypt(iv, enc);
}

// What the namespace ledger reads back of a file (ledger.hpp).
void Volume::Facts::record_in(nlohmann::json& r) const {
    r["id"] = id;
    r["size"] = size;
    r["tail"] = tail;
}

}  // namespace nvrfs
