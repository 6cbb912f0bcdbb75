// volume_namespace.cpp — the namespace: attributes, listing, mkdir/rmdir, unlink, rename (symlinks, fifos and sockets: volume_special.cpp).
#include "store/volume.hpp"
#include "store/volume_parts.hpp"

#include "base/plain_path.hpp"
#include "base/test_delay.hpp"
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

static const int kUnlinkDelayMs = env_ms("NVRFS_UNLINK_DELAY_MS");

// ---- metadata ------------------------------------------------------------

struct stat Volume::getattr(const std::string& path, Handle* h) {
    if (h) {
        struct stat st {};
        bool found = false;
        for (size_t i : holders(*h->file, false))
            if ((found = ::fstat(h->file->fds[i].get(), &st) == 0)) break;
        if (!found) throw_errno(EIO, path, "cannot stat");
        if (h->file->hdr.kind != Kind::File) return special_stat(st, h->file->hdr, h->file->size.load());
        st.st_size = static_cast<off_t>(h->file->size.load());
        return st;
    }
    return stat_stored(path, located(path));
}

struct stat Volume::stat_stored(const std::string& path, const std::string& rel) {
    struct stat st {};
    bool found = false;
    int err = ENOENT;
    uint64_t stored_max = 0, stored_min = UINT64_MAX;
    for (size_t i : set_.healthy_members()) {
        struct stat s {};
        if (int r = member_path::stat(set_.member(i).dirfd.get(), rel, s); r < 0) {
            err = -r;
            continue;
        }
        if (!S_ISREG(s.st_mode) && !S_ISDIR(s.st_mode)) {
            // nvrfs stores nothing else: a planted link or device is never shown.
            err = EIO;
            continue;
        }
        if (!found) st = s;
        found = true;
        if (!S_ISREG(s.st_mode)) break;  // directories: the first member answers
        stored_max = std::max<uint64_t>(stored_max, static_cast<uint64_t>(s.st_size));
        stored_min = std::min<uint64_t>(stored_min, static_cast<uint64_t>(s.st_size));
    }
    if (!found) throw_errno(err, path, "cannot stat");
    if (S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0 && stored_max > 0) {
        // Mode 0 on the member: maybe a symlink, fifo or socket (or a file
        // chmod 000); the header says which.
        for (size_t i : set_.healthy_members()) {
            const auto hdr = read_header(set_.member(i).dirfd.get(), rel);
            if (!hdr) continue;
            if (hdr->kind != Kind::File) return special_stat(st, *hdr, plain_size_lenient(stored_max));
            break;
        }
    }
    if (rel == ".") {
        std::lock_guard lk(root_mu_);
        st.st_mode = S_IFDIR | root_attr_.mode;
        st.st_uid = root_attr_.uid;
        st.st_gid = root_attr_.gid;
    }
    if (!S_ISREG(st.st_mode)) return st;
    // A name with no stored byte on any member: a create that never completed
    // (a full disk under older versions, a crash). Shown as an empty file so
    // it can be listed and removed; opening it fails; scrub --repair removes it.
    if (stored_max == 0) {
        st.st_size = 0;
        return st;
    }
    // Copies that differ (tampering, or a crash between members), or a file
    // that claims to be empty and is not plainly so (its one sealed chunk is
    // checked like any other: a copy cut to its header is no empty recording):
    // opening reconciles and authenticates them; the size shown is the authentic
    // one. (Without the header: a stored size valid for either version.)
    auto ps = plain_size(kFormatVersion, stored_max);
    if (!ps) ps = plain_size(kFormatV1, stored_max);
    if (stored_min != stored_max || !ps || (*ps == 0 && !authentic_empty(rel))) {
        if (const auto h = pin(path, true)) st.st_size = static_cast<off_t>(h->file->size.load());
        return st;
    }
    st.st_size = static_cast<off_t>(plain_size_lenient(stored_max));
    return st;
}

std::vector<std::string> Volume::readdir(const std::string& path) {
    std::vector<std::string> out;
    for (auto& e : list_dir(path).entries) out.push_back(std::move(e.name));
    return out;
}

// One pass over the members' entries gives the attributes a lookup would:
// `ls -l` of a camera directory then costs no round trip per file (FUSE
// READDIRPLUS). An entry whose attributes cannot be had is listed without
// them; its own lookup then reports why.
std::vector<std::pair<std::string, std::optional<struct stat>>> Volume::readdir_plus(const std::string& path) {
    Listed l = list_dir(path);
    std::vector<std::pair<std::string, std::optional<struct stat>>> out;
    out.reserve(l.entries.size());
    for (auto& e : l.entries) {
        std::optional<struct stat> st;
        try {
            st = stat_stored(child_path(path, e.name), join_rel(l.rel, e.stored));
        } catch (const Error&) {
        }
        out.emplace_back(std::move(e.name), st);
    }
    return out;
}

Volume::Listed Volume::list_dir(const std::string& path, bool settle) {
    const std::string rel = stored(path);
    const DirIv iv = diriv(path, rel);
    // Every member is listed: a name altered or removed on one member must not
    // hide a recording from listings, scrub, rebuild or backups.
    struct Seen {
        std::string name, stored;
        std::vector<size_t> on;  // members holding it
    };
    std::vector<Seen> seen;
    std::unordered_map<std::string, size_t> index;  // stored name -> seen[]
    std::vector<size_t> listed;
    for (size_t i : set_.healthy_members()) {
        const Listing l = list_stored(set_.member(i).dirfd.get(), rel);
        if (!l.ok) continue;
        listed.push_back(i);
        size_t foreign = 0;
        for (const auto& n : l.stored) {
            if (auto it = index.find(n); it != index.end()) {
                seen[it->second].on.push_back(i);
            } else if (auto name = entry_name(set_.member(i).dirfd.get(), rel, iv, n)) {
                index.emplace(n, seen.size());
                seen.push_back({std::move(*name), n, {i}});
            } else {
                ++foreign;
            }
        }
        if (foreign)
            alerts_.raise(alert::TamperDetected,
                          fmt::format("{}: {} entries on {} are not valid nvrfs names (planted or altered)", path, foreign,
                                      set_.member(i).path), path);
    }
    if (listed.empty()) throw_errno(EIO, path, "no member can list directory");
    Listed out{rel, {}};
    std::vector<std::string> lacking;
    std::vector<bool> gone(seen.size());
    // Looked at again: gone from every member, or still on some only (`differ`).
    auto recheck = [&](size_t k, std::vector<size_t>& differ) {
        size_t now = 0;
        struct stat st {};
        for (size_t i : listed) now += member_path::stat(set_.member(i).dirfd.get(), join_rel(rel, seen[k].stored), st) == 0;
        gone[k] = now == 0;
        if (now > 0 && now < listed.size()) differ.push_back(k);
    };
    std::vector<size_t> differ, still;
    for (size_t k = 0; k < seen.size(); ++k)
        if (seen[k].on.size() < listed.size()) recheck(k, differ);
    if (!differ.empty() && settle) {
        // A create, unlink or rename running now reaches the members one
        // after the other, holding place_mu_ shared until it is done: with
        // those finished, only a difference that is still there is reported.
        std::unique_lock settled(place_mu_);
        for (size_t k : differ) recheck(k, still);
    } else {
        still = std::move(differ);
    }
    for (size_t k : still) lacking.push_back(seen[k].name);
    for (size_t k = 0; k < seen.size(); ++k)
        if (!gone[k]) out.entries.push_back({std::move(seen[k].name), std::move(seen[k].stored)});
    if (!lacking.empty())
        alerts_.raise(alert::MemberInconsistent,
                      fmt::format("{}: {} entries are missing on some members (first: {}); the other members' copies "
                                  "are served and scrub --repair restores them",
                                  path, lacking.size(), lacking.front()),
                      path);
    return out;
}

void Volume::mkdir(const std::string& path, mode_t mode, const Caller& who) {
    std::shared_lock place(place_mu_);  // until its record is in the log and the members agree (list_dir)
    try {
        const std::string rel = stored(path);
        DirIv iv{};
        random_bytes(iv);
        const std::string ivrel = join_rel(rel, kDirIvName);
        const auto side = side_of(path, rel);
        check(set_.fan_out("mkdir", path, [&](size_t, Member& m) {
            const int root = m.dirfd.get();
            if (int r = put_side(root, side); r < 0) return r;
            if (int r = member_path::mkdir(root, rel, (mode | 0700) & 07777); r < 0) {
                if (r != -EEXIST) drop_side(root, rel);
                return r;
            }
            // All or nothing: a directory without its IV (its path too long
            // for the IV file, a full disk) is taken back, never left to be
            // read as tampered.
            auto undo = [&](int r) {
                member_path::unlink(root, ivrel);
                member_path::rmdir(root, rel);
                drop_side(root, rel);
                return r;
            };
            const int fd = member_path::open_file(root, ivrel, O_WRONLY | O_CREAT | O_EXCL, 0400);
            if (fd < 0) return undo(fd);
            UniqueFd own(fd);
            if (int r = write_full(fd, iv.data(), iv.size()); r < 0) return undo(r);
            if (int r = member_path::chown(root, rel, who.uid, who.gid); r < 0) return undo(r);
            if (int r = member_path::chmod(root, rel, mode & 07777); r < 0) return undo(r);
            return 0;
        }), "mkdir", path);
        audit("mkdir", who, path, 0);
    } catch (const Error& e) {
        audit("mkdir", who, path, e.code());
        throw;
    }
}

void Volume::rmdir(const std::string& path, const Caller& who) {
    try {
        // Files unlinked while open (hidden names) do not keep a directory
        // alive: they are moved out of it until they close.
        std::vector<std::string> kept;
        for (const auto& n : readdir(path)) {
            if (!hidden_name(n) || !is_open(child_path(path, n))) throw_errno(ENOTEMPTY, path, "rmdir");
            kept.push_back(child_path(path, n));
        }
        std::shared_lock place(place_mu_);  // until its record is in the log and the members agree (list_dir)
        for (const auto& p : kept) orphan(p);
        const std::string rel = stored(path);
        const std::string ivrel = join_rel(rel, kDirIvName);
        check(set_.fan_out("rmdir", path, [&](size_t, Member& m) {
            member_path::unlink(m.dirfd.get(), ivrel);
            const int r = member_path::rmdir(m.dirfd.get(), rel);
            if (r == 0) drop_side(m.dirfd.get(), rel);
            return r;
        }), "rmdir", path);
        forget_dirivs();
        audit("rmdir", who, path, 0);
    } catch (const Error& e) {
        audit("rmdir", who, path, e.code());
        throw;
    }
}

void Volume::unlink(const std::string& path, const Caller& who, const std::function<void(nlohmann::json&)>& extra) {
    std::shared_lock place(place_mu_);  // until its record is in the log (settle_records)
    uint64_t size = 0;
    try {
        const std::string rel = located(path);
        const auto hdr = archive_ ? header_at(path) : std::nullopt;
        // The size is for the record only: what the first healthy member
        // held, not authenticated (an empty file's getattr opens it to check
        // its one chunk), taken as it is removed.
        bool sized = false;
        check(set_.fan_out("unlink", path, [&](size_t i, Member& m) {
            struct stat st {};
            const bool want = !sized && set_.healthy(i);
            const int r = member_path::unlink(m.dirfd.get(), rel, want ? &st : nullptr);
            if (r == 0 && want && S_ISREG(st.st_mode)) {
                size = plain_size_lenient(static_cast<uint64_t>(st.st_size));
                sized = true;
            }
            if (r == 0) drop_side(m.dirfd.get(), rel);
            test_delay(kUnlinkDelayMs);  // t32 scrubs between two members' unlinks
            return r;
        }), "unlink", path);
        {
            std::lock_guard lk(opened_mu_);
            orphans_.erase(path);
        }
        audit("unlink", who, path, 0, [&](nlohmann::json& r) {
            r["bytes"] = size;
            if (hdr && hdr->archived) r["archived"] = true;
            if (extra) extra(r);
        });
        forget_archived(hdr, path, "unlinked");
    } catch (const Error& e) {
        audit("unlink", who, path, e.code());
        throw;
    }
}

void Volume::rename(const std::string& from, const std::string& to, unsigned flags, const Caller& who) {
    std::shared_lock place(place_mu_);
    try {
        const std::string a = stored(from), b = stored(to);
        bool dir = false, target_dir = false;
        struct stat st {};
        for (size_t i : set_.healthy_members()) {
            if (member_path::stat(set_.member(i).dirfd.get(), a, st) == 0) {
                dir = S_ISDIR(st.st_mode);
                if (member_path::stat(set_.member(i).dirfd.get(), b, st) == 0)
                    target_dir = S_ISDIR(st.st_mode);
                break;
            }
        }
        // An empty target directory still holds its IV file on the members.
        if (target_dir && !(flags & RENAME_NOREPLACE) && !(flags & RENAME_EXCHANGE)) {
            if (!list_dir(to, false).entries.empty()) throw_errno(ENOTEMPTY, to, "rename");
            const std::string ivrel = join_rel(b, kDirIvName);
            set_.fan_out("rename", to, [&](size_t, Member& m) {
                member_path::unlink(m.dirfd.get(), ivrel);
                return 0;
            });
        }
        // A side file belongs to a name, not to what stands there: an
        // exchange keeps both names and both side files; a rename needs the
        // new name's and frees the old one's.
        const bool exchange = flags & RENAME_EXCHANGE;
        const auto side_b = exchange ? std::nullopt : side_of(to, b);
        // A file replaced by the rename no longer needs its archive object.
        const auto replaced = archive_ && !exchange && !dir && !target_dir ? header_at(to) : std::nullopt;
        const int moved = set_.fan_out("rename", from, [&](size_t, Member& m) {
            const int root = m.dirfd.get();
            if (int r = put_side(root, side_b); r < 0) return r;
            const int r = member_path::rename(root, a, b, flags);
            if (r == 0 && a != b && !exchange) drop_side(root, a);
            return r;
        });
        if (!set_.in_state({MemberState::Rebuilding}).empty()) {
            note_renamed(to);
            if (exchange) note_renamed(from);
        }
        check(moved, "rename", from);
        if (dir || target_dir) forget_dirivs();
        if (replaced && a != b) forget_archived(replaced, to, "replaced by a rename");
        track_rename(from, to, flags & RENAME_EXCHANGE);
        if (!dir && !flags && hidden_name(to) && is_open(to)) {
            // The user unlinked an open file: its bytes stay until the last
            // handle closes, under a hidden name (removed then, audited again).
            audit("unlink", who, from, 0, [&](nlohmann::json& r) { r["kept_open_as"] = to; });
        } else {
            audit("rename", who, from, 0, [&](nlohmann::json& r) {
                r["to"] = to;
                if (flags & RENAME_EXCHANGE) r["exchange"] = true;
            });
        }
    } catch (const Error& e) {
        audit("rename", who, from, e.code(), [&](nlohmann::json& r) { r["to"] = to; });
        throw;
    }
}

// An attribute change through an open file (fchmod, futimens, ...) goes to
// that file's copies, whatever its name is now or whether it still has one.
void Volume::on_copies(Handle& h, const char* what, const std::function<int(int)>& op) {
    std::shared_lock lk(h.file->mu);
    std::vector<std::pair<size_t, int>> results;
    for (size_t i : holders(*h.file, true)) results.emplace_back(i, op(h.file->fds[i].get()) < 0 ? neg_errno() : 0);
    check(set_.combine(what, h.path, results), what, h.path);
}

void Volume::chmod(const std::string& path, mode_t mode, Handle* h) {
    if (h) return on_copies(*h, "chmod", [&](int fd) { return ::fchmod(fd, mode & 07777); });
    const std::string rel = stored(path);
    if (const mode_t t = getattr(path, nullptr).st_mode; S_ISFIFO(t) || S_ISSOCK(t)) return chmod_special(path, mode);
    if (rel == ".") return set_root_attr(mode, std::nullopt, std::nullopt);
    check(set_.fan_out("chmod", path, [&](size_t, Member& m) {
        return member_path::chmod(m.dirfd.get(), rel, mode & 07777);
    }), "chmod", path);
}

void Volume::chown(const std::string& path, uid_t uid, gid_t gid, Handle* h) {
    if (h) return on_copies(*h, "chown", [&](int fd) { return ::fchown(fd, uid, gid); });
    const std::string rel = stored(path);
    if (rel == ".") return set_root_attr(std::nullopt, uid, gid);
    check(set_.fan_out("chown", path, [&](size_t, Member& m) {
        return member_path::chown(m.dirfd.get(), rel, uid, gid);
    }), "chown", path);
}

void Volume::utimens(const std::string& path, const struct timespec ts[2], Handle* h) {
    if (h) return on_copies(*h, "utimens", [&](int fd) { return ::futimens(fd, ts); });
    const std::string rel = stored(path);
    check(set_.fan_out("utimens", path, [&](size_t, Member& m) {
        return member_path::utimens(m.dirfd.get(), rel, ts);
    }), "utimens", path);
}

void Volume::walk(std::vector<std::string> dirs, const std::function<void(const std::string&, const struct stat&)>& visit) {
    while (!dirs.empty()) {
        const std::string d = dirs.back();
        dirs.pop_back();
        std::vector<std::string> names;
        try {
            names = readdir(d);
        } catch (const Error&) {
            continue;
        }
        for (const auto& n : names) {
            const std::string p = child_path(d, n);
            try {
                const struct stat st = getattr(p, nullptr);
                if (S_ISDIR(st.st_mode)) dirs.push_back(p);
                else visit(p, st);
            } catch (const Error&) {
                // deleted meanwhile, or unreadable
            }
        }
    }
}

struct statvfs Volume::statfs() {
    struct statvfs out {};
    bool first = true;
    for (size_t i : set_.healthy_members()) {
        struct statvfs s {};
        if (::fstatvfs(set_.member(i).dirfd.get(), &s) < 0) continue;
        // A mirror holds as much as its smallest member.
        const double scale = static_cast<double>(s.f_frsize) / 4096.0;
        s.f_blocks = static_cast<fsblkcnt_t>(s.f_blocks * scale);
        s.f_bfree = static_cast<fsblkcnt_t>(s.f_bfree * scale);
        s.f_bavail = static_cast<fsblkcnt_t>(s.f_bavail * scale);
        s.f_bsize = s.f_frsize = 4096;
        if (first || s.f_bavail < out.f_bavail) out = s;
        first = false;
    }
    out.f_namemax = kMaxNameLen;
    return out;
}

}  // namespace nvrfs
