#include "volume.hpp"

#include "chunk_crypto.hpp"
#include "error.hpp"
#include "member_path.hpp"
#include "plain_path.hpp"
#include "tree.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/falloc.h>
#include <unistd.h>

namespace nvrfs {
namespace {

constexpr size_t kIvCacheMax = 100000;

std::string join_rel(const std::string& dir, const std::string& name) { return dir == "." ? name : dir + "/" + name; }

int neg_errno() { return -errno; }

// libfuse keeps a file that is unlinked while open under this name until its
// last handle closes (fuse_config.hard_remove = 0).
bool hidden_name(const std::string& path) {
    const size_t s = path.rfind('/');
    return path.compare(s == std::string::npos ? 0 : s + 1, 12, ".fuse_hidden") == 0;
}

const char* kind_name(Kind k) {
    switch (k) {
    case Kind::File: return "file";
    case Kind::Symlink: return "symlink";
    case Kind::Fifo: return "fifo";
    case Kind::Socket: return "socket";
    }
    return "?";
}

// The header of one member's copy, or nullopt (none, or not decodable).
std::optional<FileHeader> read_header(int root, const std::string& rel) {
    const int fd = member_path::open_file(root, rel, O_RDONLY);
    if (fd < 0) return std::nullopt;
    UniqueFd own(fd);
    uint8_t b[kHeaderSize];
    if (pread_full(fd, b, sizeof b, 0) != static_cast<ssize_t>(kHeaderSize)) return std::nullopt;
    return FileHeader::decode(b);
}

// What stat shows for a symlink, fifo or socket stored as a member file.
struct stat special_stat(struct stat st, const FileHeader& h, uint64_t size) {
    switch (h.kind) {
    case Kind::Symlink: st.st_mode = S_IFLNK | 0777; st.st_size = static_cast<off_t>(size); break;
    case Kind::Fifo: st.st_mode = S_IFIFO | h.perms; st.st_size = 0; break;
    case Kind::Socket: st.st_mode = S_IFSOCK | h.perms; st.st_size = 0; break;
    case Kind::File: break;
    }
    return st;
}

// Per-thread scratch buffers, one per use so nested uses never share. Reusing
// them spares every 1 MiB request an mmap, page faults and zero-filling.
// A file with no data: its header and one sealed empty chunk (chunk_layout.hpp).
Bytes empty_file_image(const FileHeader& hdr, const SecretKey& key) {
    Bytes img(kHeaderSize + kChunkOverhead);
    const auto h = hdr.encode();
    std::memcpy(img.data(), h.data(), h.size());
    seal_chunk(key, hdr, 0, true, {}, img.data() + kHeaderSize);
    return img;
}

// A chunk in the middle may still carry last=1 when a crash (or a killed
// daemon) came between appending new chunks and resealing the old last one.
// That is accepted: it cannot hide truncation, because the chunk that really
// ends the file must still authenticate as last.
bool open_stored_chunk(const OpenFile& f, uint64_t idx, uint64_t last, ByteView stored, uint8_t* out) {
    if (open_chunk(f.key, f.hdr, idx, idx == last, stored, out)) return true;
    return idx != last && stored.size() == kStoredChunk && open_chunk(f.key, f.hdr, idx, true, stored, out);
}

enum Scratch { kWritePlain, kWriteSealed, kReadStored, kReadPlain, kScratchSlots };
uint8_t* scratch(Scratch slot, size_t n) {
    struct Buf {
        std::unique_ptr<uint8_t[]> p;
        size_t cap = 0;
    };
    thread_local Buf bufs[kScratchSlots];
    Buf& b = bufs[slot];
    if (b.cap < n) {
        b.p.reset(new uint8_t[n]);  // uninitialised on purpose: every byte used is written first
        b.cap = n;
    }
    return b.p.get();
}

// The stored (encrypted) names one member's copy of a directory holds.
struct Listing {
    bool ok = false;
    std::vector<std::string> stored;  // stored (encrypted) names, internal files left out
};

Listing list_stored(int root, const std::string& rel) {
    Listing out;
    const int fd = member_path::open_dir(root, rel);
    if (fd < 0) return out;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(fd), ::closedir);
    if (!d) {
        ::close(fd);
        return out;
    }
    out.ok = true;
    while (dirent* e = ::readdir(d.get())) {
        std::string_view n = e->d_name;
        if (n == "." || n == ".." || n == kDirIvName || (rel == "." && n == kMetaDir) || is_long_side(n)) continue;
        out.stored.emplace_back(n);
    }
    return out;
}

}  // namespace

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
    log_.append(std::move(rec));
}

// ---- names ---------------------------------------------------------------

std::vector<size_t> Volume::holders(const OpenFile& f, bool writable) const {
    std::vector<size_t> out;
    for (size_t i : writable ? set_.writable_members() : set_.healthy_members())
        if (f.fds[i]) out.push_back(i);
    return out;
}

namespace {

// The IV stored for a directory on one member: exactly 16 bytes in a regular file.
std::optional<DirIv> read_iv(int root, const std::string& ivrel) {
    const int fd = member_path::open_file(root, ivrel, O_RDONLY);
    if (fd < 0) return std::nullopt;
    UniqueFd own(fd);
    DirIv iv{};
    uint8_t extra;
    if (pread_full(fd, iv.data(), iv.size(), 0) != static_cast<ssize_t>(iv.size()) || pread_full(fd, &extra, 1, iv.size()) != 0)
        return std::nullopt;
    return iv;
}

int write_iv(int root, const std::string& ivrel, const DirIv& iv) {
    member_path::unlink(root, ivrel);
    const int fd = member_path::open_file(root, ivrel, O_WRONLY | O_CREAT | O_EXCL, 0400);
    if (fd < 0) return fd;
    UniqueFd own(fd);
    if (int r = write_full(fd, iv.data(), iv.size()); r < 0) return r;
    return ::fsync(fd) < 0 ? -errno : 0;
}

}  // namespace

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

// ---- metadata ------------------------------------------------------------

struct stat Volume::getattr(const std::string& path, Handle* h) {
    struct stat st {};
    bool found = false;
    int err = ENOENT;
    uint64_t stored_max = 0, stored_min = UINT64_MAX;
    if (h) {
        for (size_t i : holders(*h->file, false)) {
            struct stat s {};
            if (::fstat(h->file->fds[i].get(), &s) < 0) continue;
            if (!found) st = s;
            found = true;
        }
        if (!found) throw_errno(EIO, path, "cannot stat");
        if (h->file->hdr.kind != Kind::File) return special_stat(st, h->file->hdr, h->file->size.load());
        st.st_size = static_cast<off_t>(h->file->size.load());
        return st;
    }
    const std::string rel = located(path);
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
    // Copies that differ, or a file that claims to be empty (its one sealed
    // chunk is checked like any other: a copy cut to its header is no empty
    // recording): opening reconciles and authenticates them.
    if (stored_min != stored_max || !plain_size(stored_max) || *plain_size(stored_max) == 0) {
        // The copies differ (tampering, or a crash between members): opening
        // reconciles them, and the size reported is the authentic one.
        if (const auto h = pin(path)) st.st_size = static_cast<off_t>(h->file->size.load());
        return st;
    }
    st.st_size = static_cast<off_t>(plain_size_lenient(stored_max));
    return st;
}

std::vector<std::string> Volume::readdir(const std::string& path) {
    const std::string rel = stored(path);
    const DirIv iv = diriv(path, rel);
    // Every member is listed: a name altered or removed on one member must not
    // hide a recording from listings, scrub, rebuild or backups.
    struct Seen {
        std::string name;
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
                seen.push_back({std::move(*name), {i}});
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
    std::vector<std::string> out;
    std::vector<std::string> lacking;
    std::vector<bool> gone(seen.size());
    for (auto& [stored_name, k] : index) {
        Seen& e = seen[k];
        if (e.on.size() < listed.size()) {
            // A create or unlink running now reaches the members one after the
            // other; only a difference that is still there is reported.
            size_t now = 0;
            struct stat st {};
            for (size_t i : listed) now += member_path::stat(set_.member(i).dirfd.get(), join_rel(rel, stored_name), st) == 0;
            gone[k] = now == 0;
            if (now > 0 && now < listed.size()) lacking.push_back(e.name);
        }
    }
    for (size_t k = 0; k < seen.size(); ++k)
        if (!gone[k]) out.push_back(std::move(seen[k].name));
    if (!lacking.empty())
        alerts_.raise(alert::MemberInconsistent,
                      fmt::format("{}: {} entries are missing on some members (first: {}); the other members' copies "
                                  "are served and scrub --repair restores them",
                                  path, lacking.size(), lacking.front()),
                      path);
    return out;
}

void Volume::mkdir(const std::string& path, mode_t mode, const Caller& who) {
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
    uint64_t size = 0;
    try {
        const std::string rel = located(path);
        try {
            size = static_cast<uint64_t>(getattr(path, nullptr).st_size);
        } catch (const Error&) {
        }
        check(set_.fan_out("unlink", path, [&](size_t, Member& m) {
            const int r = member_path::unlink(m.dirfd.get(), rel);
            if (r == 0) drop_side(m.dirfd.get(), rel);
            return r;
        }), "unlink", path);
        {
            std::lock_guard lk(opened_mu_);
            orphans_.erase(path);
        }
        audit("unlink", who, path, 0, [&](nlohmann::json& r) {
            r["bytes"] = size;
            if (extra) extra(r);
        });
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
            if (!readdir(to).empty()) throw_errno(ENOTEMPTY, to, "rename");
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
        check(set_.fan_out("rename", from, [&](size_t, Member& m) {
            const int root = m.dirfd.get();
            if (int r = put_side(root, side_b); r < 0) return r;
            const int r = member_path::rename(root, a, b, flags);
            if (r == 0 && a != b && !exchange) drop_side(root, a);
            return r;
        }), "rename", from);
        if (dir || target_dir) forget_dirivs();
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

// ---- open files ----------------------------------------------------------

FileHeader Volume::choose_header(OpenFile& f, const std::string& path) {
    struct Cand {
        size_t member;
        std::optional<FileHeader> hdr;
    };
    std::vector<Cand> cands;
    bool all_empty = true;  // no member holds a single byte: a create that never completed
    for (size_t i : holders(f, false)) {
        uint8_t b[kHeaderSize];
        std::optional<FileHeader> h;
        const ssize_t n = pread_full(f.fds[i].get(), b, sizeof b, 0);
        if (n == static_cast<ssize_t>(kHeaderSize)) h = FileHeader::decode(b);
        all_empty = all_empty && n == 0;
        cands.push_back({i, h});
    }
    if (cands.empty()) throw_errno(EIO, path, "no member holds");
    if (all_empty)
        throw Error(EIO, path, fmt::format("{}: an incomplete file (its create never completed); scrub --repair removes it", path));
    bool agree = cands[0].hdr.has_value();
    for (auto& c : cands) agree = agree && c.hdr == cands[0].hdr;
    if (agree) return *cands[0].hdr;

    // Members disagree: the true header is the one whose chunk 0 authenticates.
    for (auto& c : cands) {
        if (!c.hdr) continue;
        SecretKey k = file_key(set_.keys().content, *c.hdr);
        Bytes st(kStoredChunk), pt(kChunkSize);
        ssize_t n = pread_full(f.fds[c.member].get(), st.data(), st.size(), kHeaderSize);
        if (n < static_cast<ssize_t>(kChunkOverhead)) continue;
        const ByteView chunk(st.data(), static_cast<size_t>(n));
        if (!open_chunk(k, *c.hdr, 0, true, chunk, pt.data()) && !open_chunk(k, *c.hdr, 0, false, chunk, pt.data())) continue;
        const auto good = c.hdr->encode();
        for (auto& o : cands)
            if (o.hdr != c.hdr) pwrite_full(f.fds[o.member].get(), good.data(), good.size(), 0);
        alerts_.raise(alert::TamperRepaired, fmt::format("{}: file header differed between members; repaired from {}", path,
                                                         set_.member(c.member).path), path);
        return *c.hdr;
    }
    alerts_.raise(alert::TamperDetected, fmt::format("{}: no member holds an authentic file header", path), path);
    throw Error(EIO, path, "corrupt file header: " + path);
}

std::shared_ptr<OpenFile> Volume::open_stored(const std::string& path, const std::string& rel, int extra_flags, mode_t mode,
                                              const Caller* creator, Kind kind) {
    auto f = std::make_shared<OpenFile>();
    f->fds.resize(kMaxMembers);
    std::vector<std::pair<size_t, int>> results;
    bool fresh = false;
    const auto side = (extra_flags & O_CREAT) ? side_of(path, rel) : std::nullopt;
    for (size_t i : set_.writable_members()) {
        const int root = set_.member(i).dirfd.get();
        int fd = put_side(root, side);
        if (fd == 0) fd = member_path::open_file(root, rel, O_RDWR | extra_flags, mode);
        if (fd == -EROFS && !(extra_flags & O_CREAT)) fd = member_path::open_file(root, rel, O_RDONLY);
        results.emplace_back(i, fd < 0 ? fd : 0);
        if (fd >= 0) {
            f->fds[i].reset(fd);
            struct stat st {};
            ::fstat(fd, &st);
            if (st.st_size == 0 && creator) fresh = true;
            // Fewer blocks than bytes: the copy holds zero-form chunks (holes).
            if (static_cast<uint64_t>(st.st_blocks) * 512 < static_cast<uint64_t>(st.st_size)) f->sparse = true;
        }
    }
    check(set_.combine("open", path, results), "open", path);
    if (fresh) {
        // A new file: one header and one sealed empty chunk, the same bytes on every member.
        random_bytes(f->hdr.id);
        f->hdr.kind = kind;
        if (kind == Kind::Fifo || kind == Kind::Socket) f->hdr.perms = static_cast<uint16_t>(mode & 07777);
        // A member file of mode 0 says "read the header": the kind is there.
        if (kind != Kind::File) mode = 0;
        f->key = file_key(set_.keys().content, f->hdr);
        const Bytes init = empty_file_image(f->hdr, f->key);
        std::vector<std::pair<size_t, int>> wr;
        for (size_t i : holders(*f, true)) {
            int r = ::fallocate(f->fds[i].get(), 0, 0, static_cast<off_t>(init.size())) < 0 && errno != EOPNOTSUPP ? neg_errno() : 0;
            if (r == 0) r = pwrite_full(f->fds[i].get(), init.data(), init.size(), 0);
            if (r == 0 && ::fchown(f->fds[i].get(), creator->uid, creator->gid) < 0) r = neg_errno();
            // The kernel already applied the caller's umask; nvrfsd's own must not.
            if (r == 0 && ::fchmod(f->fds[i].get(), mode & 07777) < 0) r = neg_errno();
            wr.emplace_back(i, r);
        }
        // A create is all or nothing: a name that cannot hold its header and
        // sealed empty chunk on every member (combine says ENOSPC when the
        // set is full) is taken back everywhere.
        if (const int r = set_.combine("create", path, wr); r < 0) {
            for (size_t i : holders(*f, true)) {
                member_path::unlink(set_.member(i).dirfd.get(), rel);
                drop_side(set_.member(i).dirfd.get(), rel);
            }
            check(r, "create", path);
        }
        f->size = 0;
        f->tail.valid = true;
        f->tail.index = 0;
    } else {
        f->hdr = choose_header(*f, path);
        f->key = file_key(set_.keys().content, f->hdr);
        uint64_t best = 0;
        bool any_valid = false;
        for (size_t i = 0; i < f->fds.size(); ++i) {
            if (!f->fds[i]) continue;
            struct stat st {};
            if (::fstat(f->fds[i].get(), &st) < 0) continue;
            auto ps = plain_size(static_cast<uint64_t>(st.st_size));
            if (ps && (!any_valid || *ps > best)) best = *ps, any_valid = true;
            if (!any_valid) best = std::max(best, plain_size_lenient(static_cast<uint64_t>(st.st_size)));
        }
        f->size = best;
    }
    auto shared = open_.acquire(f->hdr.id, f);
    if (shared == f && !fresh) {
        // First opener: nobody can write until the copies agree in length.
        std::unique_lock lk(f->mu);
        try {
            reconcile_lengths(*f, path);
            check_empty(*f, path);
        } catch (...) {
            lk.unlock();
            open_.release(f);
            throw;
        }
    }
    return shared;
}

std::optional<size_t> Volume::find_authentic(OpenFile& f, uint64_t idx, uint64_t size, const std::vector<size_t>& from,
                                             uint8_t* sealed, uint8_t* plain) {
    const size_t sl = chunk_plain_len(size, idx) + kChunkOverhead;
    for (size_t j : from) {
        if (pread_full(f.fds[j].get(), sealed, sl, static_cast<off_t>(stored_offset(idx))) == static_cast<ssize_t>(sl) &&
            open_stored_chunk(f, idx, last_chunk(size), ByteView(sealed, sl), plain))
            return j;
    }
    return std::nullopt;
}

void Volume::reconcile_lengths(OpenFile& f, const std::string& path) {
    std::vector<std::pair<size_t, uint64_t>> lens;
    bool differ = false;
    for (size_t i : holders(f, false)) {
        struct stat st {};
        if (::fstat(f.fds[i].get(), &st) < 0) continue;
        lens.emplace_back(i, static_cast<uint64_t>(st.st_size));
        differ |= lens.front().second != lens.back().second;
    }
    if (!differ) return;
    // The copies differ in length: someone cut or padded one, or a crash hit
    // between the members. The file's length is the longest valid one whose
    // last chunk authenticates as the last. Every chunk of the repaired copies
    // is taken from a member where it authenticates, never copied blind: one
    // member's cut tail must not let another member's bad chunk spread.
    std::sort(lens.begin(), lens.end(), [](auto& a, auto& b) { return a.second > b.second; });
    std::vector<size_t> members;
    for (auto [i, len] : lens) members.push_back(i);
    Bytes sealed(kStoredChunk), plain(kChunkSize);
    for (auto [g, len] : lens) {
        auto ps = plain_size(len);
        if (!ps) continue;
        const uint64_t li = last_chunk(*ps);
        const size_t sl = chunk_plain_len(*ps, li) + kChunkOverhead;
        if (pread_full(f.fds[g].get(), sealed.data(), sl, static_cast<off_t>(stored_offset(li))) != static_cast<ssize_t>(sl) ||
            !open_chunk(f.key, f.hdr, li, true, ByteView(sealed.data(), sl), plain.data()))
            continue;
        f.size = *ps;
        uint64_t unrecoverable = 0;
        std::vector<std::pair<size_t, int>> results;  // members whose copy is not this length
        for (auto [j, jl] : lens)
            if (jl != len) results.emplace_back(j, 0);
        for (uint64_t c = 0; c <= li; ++c) {
            const auto src = find_authentic(f, c, *ps, members, sealed.data(), plain.data());
            if (!src) {
                ++unrecoverable;
                continue;
            }
            const size_t csl = chunk_plain_len(*ps, c) + kChunkOverhead;
            for (auto& [j, r] : results)
                if (r == 0 && j != *src) r = pwrite_full(f.fds[j].get(), sealed.data(), csl, static_cast<off_t>(stored_offset(c)));
        }
        std::vector<std::string> fixed;
        for (auto& [j, r] : results) {
            if (r == 0 && ::ftruncate(f.fds[j].get(), static_cast<off_t>(len)) < 0) r = -errno;
            if (r < 0) set_.fail(j, -r, "repair " + path);
            else fixed.push_back(set_.member(j).path);
        }
        // A crash between members and a cut copy look alike; either way the
        // authentic chunks win, so this is an inconsistency, not lost data.
        alerts_.raise(alert::MemberInconsistent,
                      fmt::format("{}: stored copies differ in length; rebuilt {} from the authentic chunks (length from {})",
                                  path, fmt::join(fixed, ", "), set_.member(g).path),
                      path);
        if (unrecoverable)
            alerts_.raise(alert::TamperDetected,
                          fmt::format("{}: {} chunk(s) authentic on no member; reads of them fail", path, unrecoverable), path);
        return;
    }
    alerts_.raise(alert::TamperDetected, fmt::format("{}: stored copies differ in length and none ends in an authentic last chunk", path), path);
}

// A file of no bytes still ends in a sealed empty chunk: a copy cut to its
// header, or to any length that decrypts as empty, must not pass as an empty
// recording. Checked when the file is first opened.
void Volume::check_empty(OpenFile& f, const std::string& path) {
    if (f.size != 0) return;
    Bytes out(kChunkSize);
    load_chunks(f, path, 0, 0, out.data());
}

std::unique_ptr<Handle> Volume::create(const std::string& path, mode_t mode, int flags, const Caller& who) {
    try {
        const std::string rel = stored(path);
        if (!make_room(kHeaderSize + kChunkOverhead, set_.writable_members())) throw_errno(ENOSPC, path, "create");
        std::shared_lock place(place_mu_);
        auto h = std::make_unique<Handle>();
        h->file = open_stored(path, rel, O_CREAT | (flags & O_EXCL), mode & 07777, &who);
        h->path = path;
        h->writable = true;
        h->who = who;
        if (flags & O_TRUNC && h->file->size > 0) {
            std::unique_lock lk(h->file->mu);
            truncate_locked(*h->file, path, 0);
        }
        audit("create", who, path, 0, [&](nlohmann::json& r) { r["id"] = hex(h->file->hdr.id); });
        track_open(*h);
        return h;
    } catch (const Error& e) {
        audit("create", who, path, e.code());
        throw;
    }
}

std::unique_ptr<Handle> Volume::open(const std::string& path, int flags, const Caller& who) {
    for (int attempt = 0;; ++attempt) {
        auto h = open_any(path, flags, who);
        if (h->file->hdr.kind != Kind::File) {
            // getattr showed a regular file, so the member's mode was changed:
            // the authenticated header says otherwise.
            alerts_.raise(alert::TamperDetected, fmt::format("{}: stored as a {} but its member file's mode was altered to "
                                                             "show a regular file", path, kind_name(h->file->hdr.kind)), path);
            release(std::move(h));
            throw Error(EIO, path, path + ": stored kind does not match its mode");
        }
        try {
            check_place(*h);
            return h;
        } catch (const Moved&) {
            // Unlinked or replaced between our open and our check: open what
            // stands there now (ENOENT when nothing does).
            release(std::move(h));
            if (attempt == 2) throw_errno(ENOENT, path, "open");
        } catch (...) {
            release(std::move(h));
            throw;
        }
    }
}

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

std::unique_ptr<Handle> Volume::open_any(const std::string& path, int flags, const Caller& who) {
    const std::string rel = stored(path);
    auto h = std::make_unique<Handle>();
    h->file = open_stored(path, rel, 0, 0, nullptr);
    h->path = path;
    h->writable = (flags & O_ACCMODE) != O_RDONLY;
    h->who = who;
    if (h->writable && (flags & O_TRUNC)) {
        std::shared_lock place(place_mu_);
        const uint64_t old = h->file->size;
        try {
            std::unique_lock lk(h->file->mu);
            truncate_locked(*h->file, path, 0);
            const Facts now = facts_locked(*h->file);
            audit("truncate", who, path, 0, [&](nlohmann::json& r) {
                r["bytes"] = 0;
                r["from"] = old;
                now.record_in(r);
            });
        } catch (const Error& e) {
            audit("truncate", who, path, e.code());
            open_.release(h->file);
            throw;
        }
    }
    track_open(*h);
    return h;
}

void Volume::track_open(const Handle& h) {
    std::lock_guard lk(opened_mu_);
    opened_[&h] = h.path;
}

bool Volume::is_open(const std::string& path) {
    std::lock_guard lk(opened_mu_);
    return std::any_of(opened_.begin(), opened_.end(), [&](const auto& e) { return e.second == path; });
}

// Open files follow a rename of themselves or of a directory above them, so
// recycling and the open-but-unlinked rules see their current names.
void Volume::track_rename(const std::string& from, const std::string& to, bool exchange) {
    std::lock_guard lk(opened_mu_);
    for (auto& [h, p] : opened_) {
        if (auto n = rebased(p, from, to)) p = *n;
        else if (exchange)
            if (auto m = rebased(p, to, from)) p = *m;
    }
}

// What the audit log records of a file's contents at each close (the
// namespace ledger, ledger.hpp): its id and the tag that ends its last chunk.
Volume::Facts Volume::facts_locked(const OpenFile& f) const {
    Facts out;
    out.id = hex(f.hdr.id);
    out.size = f.size.load();
    const uint64_t end = stored_size(out.size);
    for (size_t i : holders(f, false)) {
        uint8_t tag[kGcmTag];
        if (pread_full(f.fds[i].get(), tag, sizeof tag, static_cast<off_t>(end - kGcmTag)) == static_cast<ssize_t>(sizeof tag)) {
            out.tail = hex(ByteView(tag, sizeof tag));
            break;
        }
    }
    return out;
}

std::optional<Volume::Facts> Volume::facts(const std::string& path) {
    const auto h = pin(path);
    if (!h) return std::nullopt;
    std::shared_lock lk(h->file->mu);
    return facts_locked(*h->file);
}

std::string Volume::located(const std::string& path) {
    {
        std::lock_guard lk(opened_mu_);
        if (auto it = orphans_.find(path); it != orphans_.end()) return it->second;
    }
    return stored(path);
}

void Volume::orphan(const std::string& path) {
    const std::string rel = stored(path);
    std::array<uint8_t, 8> rnd{};
    random_bytes(rnd);
    const std::string to = std::string(kOrphanDir) + "/" + hex(rnd);
    check(set_.fan_out("rmdir", path, [&](size_t, Member& m) {
        member_path::mkdir(m.dirfd.get(), kOrphanDir, 0700);
        const int r = member_path::rename(m.dirfd.get(), rel, to, RENAME_NOREPLACE);
        if (r == 0) drop_side(m.dirfd.get(), rel);
        return r;
    }), "rmdir", path);
    std::lock_guard lk(opened_mu_);
    orphans_[path] = to;
}

void Volume::release(std::unique_ptr<Handle> h) {
    std::shared_lock place(place_mu_, std::defer_lock);
    if (h->writable) place.lock();  // until the session's record is written
    std::string gone;  // an orphan whose last handle this was
    std::string now;
    {
        std::lock_guard lk(opened_mu_);
        if (auto it = opened_.find(h.get()); it != opened_.end()) {
            now = std::move(it->second);
            opened_.erase(it);
        }
        if (auto o = orphans_.find(now); o != orphans_.end() &&
            std::none_of(opened_.begin(), opened_.end(), [&](const auto& e) { return e.second == now; })) {
            gone = o->second;
            orphans_.erase(o);
        }
    }
    if (!gone.empty()) {
        // libfuse cannot name a file whose directory is gone, so the daemon
        // removes it itself when it closes.
        set_.fan_out("unlink", now, [&](size_t, Member& m) {
            const int r = member_path::unlink(m.dirfd.get(), gone);
            member_path::rmdir(m.dirfd.get(), kOrphanDir);  // when it was the last one
            return r;
        });
        audit("unlink", Caller::daemon(), now, 0, [&](nlohmann::json& r) { r["reason"] = "last handle of a file unlinked while open closed"; });
    }
    // A write session is audited at its close, with what the ledger needs;
    // a read-write open that wrote nothing reads nothing more.
    const bool session = h->writable && (h->bytes_written > 0 || h->first_error);
    Facts closed;
    if (h->writable) {
        std::unique_lock lk(h->file->mu);
        release_reserve(*h->file);
        if (session) closed = facts_locked(*h->file);
    }
    if (session) {
        // Under the name it has now (a segment renamed while still open).
        const std::string& where = now.empty() ? h->path : now;
        audit("write", h->who, where, h->first_error, [&](nlohmann::json& r) {
            r["bytes"] = h->bytes_written;
            closed.record_in(r);
            if (where != h->path) r["opened_as"] = h->path;
        });
    }
    open_.release(h->file);
}

void Volume::fsync(Handle& h, bool datasync) {
    std::shared_lock lk(h.file->mu);
    std::vector<std::pair<size_t, int>> results;
    for (size_t i : holders(*h.file, true)) {
        int r = datasync ? ::fdatasync(h.file->fds[i].get()) : ::fsync(h.file->fds[i].get());
        results.emplace_back(i, r < 0 ? neg_errno() : 0);
    }
    check(set_.combine("fsync", h.path, results), "fsync", h.path);
}

// ---- data ----------------------------------------------------------------

void Volume::load_chunks(OpenFile& f, const std::string& path, uint64_t c0, uint64_t c1, uint8_t* out) {
    const uint64_t size = f.size, last = last_chunk(size);
    uint64_t stored_len = 0;
    for (uint64_t i = c0; i <= c1; ++i) stored_len += chunk_plain_len(size, i) + kChunkOverhead;

    const std::vector<size_t> readers = holders(f, false);
    if (readers.empty()) throw_errno(EIO, path, "no healthy member holds");

    const size_t primary = f.reads.pick(set_, readers);
    uint8_t* buf = scratch(kReadStored, stored_len);
    ssize_t n = pread_full(f.fds[primary].get(), buf, stored_len, static_cast<off_t>(stored_offset(c0)));
    if (n < 0) {
        if (is_media_error(static_cast<int>(-n)) && readers.size() > 1) set_.fail(primary, static_cast<int>(-n), "read " + path);
        n = 0;  // every chunk is recovered from the others below
    }
    std::vector<uint64_t> repaired;
    size_t pos = 0;
    Bytes other;  // a copy from another member, only when the primary's is bad
    for (uint64_t i = c0; i <= c1; ++i) {
        const size_t pl = chunk_plain_len(size, i), sl = pl + kChunkOverhead;
        uint8_t* dst = out + (i - c0) * kChunkSize;
        const bool good = pos + sl <= static_cast<size_t>(n) && open_stored_chunk(f, i, last, ByteView(buf + pos, sl), dst);
        pos += sl;
        if (good) continue;
        // Bad or missing on the primary: find an authentic copy elsewhere.
        bool fixed = false;
        std::vector<size_t> bad = {primary};
        other.resize(kStoredChunk);
        for (size_t j : readers) {
            if (j == primary) continue;
            ssize_t m = pread_full(f.fds[j].get(), other.data(), sl, static_cast<off_t>(stored_offset(i)));
            if (m == static_cast<ssize_t>(sl) && open_stored_chunk(f, i, last, ByteView(other.data(), sl), dst)) {
                for (size_t b : bad) {
                    if (set_.healthy(b) && pwrite_full(f.fds[b].get(), other.data(), sl, static_cast<off_t>(stored_offset(i))) == 0)
                        set_.member(b).repaired++;
                }
                fixed = true;
                break;
            }
            bad.push_back(j);
        }
        chunks_bad_ += bad.size();
        if (!fixed) {
            alerts_.raise(alert::TamperDetected,
                          fmt::format("{}: chunk {} is not authentic on any member; read refused", path, i), path);
            throw Error(EIO, path, fmt::format("{}: chunk {} failed authentication on every member", path, i));
        }
        repaired.push_back(i);
    }
    chunks_ok_ += c1 - c0 + 1;
    if (!repaired.empty())
        alerts_.raise(alert::TamperDetected,
                      fmt::format("{}: {} chunk(s) failed authentication on {} (first: chunk {}); repaired from the mirror",
                                  path, repaired.size(), set_.member(primary).path, repaired.front()), path);
}

void Volume::chunk_plain(OpenFile& f, const std::string& path, uint64_t idx, uint8_t* out) {
    if (f.tail.valid && f.tail.index == idx) {
        std::memcpy(out, f.tail.plain.data(), f.tail.plain.size());
        return;
    }
    load_chunks(f, path, idx, idx, out);
}

size_t Volume::read(Handle& h, uint8_t* buf, size_t size, uint64_t off) {
    OpenFile& f = *h.file;
    std::shared_lock lk(f.mu);
    const uint64_t fsize = f.size;
    if (off >= fsize || size == 0) return 0;
    const uint64_t end = std::min<uint64_t>(fsize, off + size);
    const uint64_t c0 = off / kChunkSize, c1 = (end - 1) / kChunkSize;
    // Whole chunks up to the request's end fit the caller's buffer exactly.
    read_bytes_ += end - off;
    if (off % kChunkSize == 0 && (end % kChunkSize == 0 || end == fsize)) {
        load_chunks(f, h.path, c0, c1, buf);  // decrypt straight into the caller's buffer
        return static_cast<size_t>(end - off);
    }
    uint8_t* plain = scratch(kReadPlain, (c1 - c0 + 1) * kChunkSize);
    load_chunks(f, h.path, c0, c1, plain);
    std::memcpy(buf, plain + (off - c0 * kChunkSize), static_cast<size_t>(end - off));
    return static_cast<size_t>(end - off);
}

// Chunks per piece of a request that one thread seals.
constexpr uint64_t kPieceChunks = 4;

void Volume::seal_and_store(OpenFile& f, const std::string& path, uint64_t c0, uint64_t c1, uint64_t new_size,
                            const std::vector<const uint8_t*>& plain, bool grows) {
    const uint64_t new_last = last_chunk(new_size);
    const uint64_t begin = stored_offset(c0), end = stored_offset(c1) + chunk_plain_len(new_size, c1) + kChunkOverhead;
    uint8_t* sealed = scratch(kWriteSealed, static_cast<size_t>(end - begin));
    // Per member: 0, or the first error any piece met there.
    std::array<std::atomic<int>, kMaxMembers> err{};
    const std::vector<size_t> targets = holders(f, true);
    if (grows && end > f.reserved_to) reserve(f, targets, begin, end, err);
    else if (f.sparse) allocate_holes(f, targets, begin, end);
    const uint64_t pieces = (c1 - c0) / kPieceChunks + 1;
    set_.parallel_for(static_cast<size_t>(pieces), [&](size_t k) {
        const uint64_t a = c0 + k * kPieceChunks, b = std::min(c1, a + kPieceChunks - 1);
        uint8_t* out = sealed + (stored_offset(a) - begin);
        for (uint64_t i = a; i <= b; ++i) {
            const size_t pl = chunk_plain_len(new_size, i);
            seal_chunk(f.key, f.hdr, i, i == new_last, ByteView(plain[i - c0], pl), out);
            out += pl + kChunkOverhead;
        }
    });
    // One write per member: chunks are not page-aligned, and a page split
    // between two writes of an existing file is read from disk for each.
    set_.parallel_for(targets.size(), [&](size_t k) {
        const size_t t = targets[k];
        if (err[t].load()) return;
        if (int r = pwrite_full(f.fds[t].get(), sealed, static_cast<size_t>(end - begin), static_cast<off_t>(begin))) err[t] = r;
    });
    std::vector<std::pair<size_t, int>> results;
    for (size_t t : targets) results.emplace_back(t, err[t].load());
    check(set_.combine("write", path, results), "write", path);
    start_writeout(f, targets, end);
}

// Space is reserved before a file grows, so a full disk fails the write before
// any byte of it is down and never leaves a torn chunk behind. Reserving a
// few MiB ahead spares a camera stream's small appends one allocation each
// (measured: fallocate was 9% of nvrfsd's time with 128 cameras) and gives
// the member file system larger extents; release_reserve() returns the rest.
constexpr uint64_t kReserveStep = 4 << 20;

void Volume::reserve(OpenFile& f, const std::vector<size_t>& members, uint64_t begin, uint64_t end,
                     std::array<std::atomic<int>, kMaxMembers>& err) {
    // Room first, on every member, before any byte is written: a full set
    // answers ENOSPC with nothing written anywhere (no torn chunk, no copy
    // longer than the other), keeps kMetaReserve for the audit log and
    // metadata, and gets the recycler's help before it says so.
    uint64_t upto = end + kReserveStep;
    const uint64_t want = end - std::min(end, std::max(begin, f.reserved_to));
    if (!make_room(want, members)) throw Error(ENOSPC, "", "no space left on the set");
    for (size_t i : members) {
        const int fd = f.fds[i].get();
        int r = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(begin), static_cast<off_t>(upto - begin));
        if (r < 0 && errno == ENOSPC) {  // no room to reserve ahead: just this write, then
            upto = end;
            r = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(begin), static_cast<off_t>(end - begin));
        }
        if (r < 0 && errno != EOPNOTSUPP) err[i] = neg_errno();
    }
    // A member that is full while its peers are not is failing; one that is
    // as full as its peers is the set being full: nothing is written.
    for (size_t i : members) {
        const int e = -err[i].load();
        if ((e == ENOSPC || e == EDQUOT) && !set_.full_alone(i)) throw Error(e, "", "no space left on the set");
    }
    f.reserved_to = upto;
}

// Data written into a hole needs blocks the member has not given yet: they
// are taken first, so a full disk fails the write before a chunk is torn.
void Volume::allocate_holes(OpenFile& f, const std::vector<size_t>& members, uint64_t begin, uint64_t end) {
    if (!make_room(end - begin, members)) throw Error(ENOSPC, "", "no space left on the set");
    for (size_t i : members) {
        if (::fallocate(f.fds[i].get(), FALLOC_FL_KEEP_SIZE, static_cast<off_t>(begin), static_cast<off_t>(end - begin)) < 0 &&
            errno != EOPNOTSUPP) {
            // Other errors are the write's to meet and report.
            const int e = errno;
            if ((e == ENOSPC || e == EDQUOT) && !set_.full_alone(i)) throw Error(e, "", "no space left on the set");
        }
    }
}

bool Volume::make_room(uint64_t bytes, const std::vector<size_t>& members, bool recycle) {
    auto fits = [&] {
        for (size_t i : members) {
            struct statvfs s {};
            if (::fstatvfs(set_.member(i).dirfd.get(), &s) < 0) continue;
            const uint64_t avail = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
            if (avail < bytes + kMetaReserve && !set_.full_alone(i)) return false;
        }
        return true;
    };
    if (fits()) {
        full_alerted_.store(false, std::memory_order_relaxed);
        return true;
    }
    // Recycling frees the oldest recordings (space_monitor.hpp); it runs on
    // this thread, so the writer waits for it rather than seeing ENOSPC.
    if (!recycle) return false;
    for (int tries = 0; tries < 8 && on_full_; ++tries) {
        if (!on_full_(bytes + kMetaReserve)) break;
        if (fits()) return true;
    }
    if (fits()) return true;
    alerts_once_full();
    return false;
}

void Volume::alerts_once_full() {
    if (full_alerted_.exchange(true)) return;
    alerts_.raise(alert::SpaceLow, fmt::format("the set is full: writes answer ENOSPC (the last {} MiB of each member are kept "
                                               "for the audit log and metadata)", kMetaReserve >> 20));
}

void Volume::release_reserve(OpenFile& f) {
    const uint64_t used = stored_size(f.size);
    if (f.reserved_to <= used) return;
    for (size_t i : holders(f, true)) {
        // A truncate to the same size frees the blocks past the end (ext4,
        // tmpfs; punching a hole there does not on ext4). It also stamps the
        // file's times, which `cp -p` and `tar` set just before closing: keep them.
        struct stat st {};
        if (::fstat(f.fds[i].get(), &st) < 0 || ::ftruncate(f.fds[i].get(), static_cast<off_t>(used)) < 0) continue;
        const struct timespec times[2] = {st.st_atim, st.st_mtim};
        ::futimens(f.fds[i].get(), times);
    }
    f.reserved_to = 0;
}

// A recorder writes for hours and fsyncs rarely: left alone, the kernel holds
// gigabytes of dirty pages and writes them in one burst at fsync or memory
// pressure, the disk idle meanwhile. Starting the write-out of every few MiB
// as it is written keeps the disks busy while the next data is encrypted, and
// bounds what a power cut can take. (Asynchronous: it waits for no disk.)
constexpr uint64_t kWriteoutStep = 8 << 20;

void Volume::start_writeout(OpenFile& f, const std::vector<size_t>& members, uint64_t upto) {
    if (upto < f.writeout_from + kWriteoutStep) {
        if (upto < f.writeout_from) f.writeout_from = 0;  // rewritten from the start (truncate)
        return;
    }
    for (size_t i : members)
        ::sync_file_range(f.fds[i].get(), static_cast<off64_t>(f.writeout_from),
                          static_cast<off64_t>(upto - f.writeout_from), SYNC_FILE_RANGE_WRITE);
    f.writeout_from = upto;
}

void Volume::write_locked(OpenFile& f, const std::string& path, const uint8_t* data, uint64_t off, uint64_t len) {
    if (len == 0) return;
    const uint64_t size = f.size, end = off + len, new_size = std::max(size, end);
    const uint64_t c0 = off / kChunkSize, c1 = (end - 1) / kChunkSize;
    const uint64_t old_last = last_chunk(size), new_last = last_chunk(new_size);
    const size_t nchunks = static_cast<size_t>(c1 - c0 + 1);

    // The old last chunk stays but stops being last: it is sealed again with
    // last=0 after the new chunks are down. Read it while `size` still says so.
    const bool reseal = old_last < c0 && old_last != new_last;
    Bytes old_tail;
    if (reseal) {
        old_tail.resize(kChunkSize);
        chunk_plain(f, path, old_last, old_tail.data());
    }

    // A chunk the write fills entirely is sealed straight from the caller's
    // buffer. The others are merged with their old data in `merged` first:
    // off <= size, so every byte is either old data or written data.
    std::vector<const uint8_t*> plain(nchunks);
    uint8_t* merged = nullptr;
    for (uint64_t i = c0; i <= c1; ++i) {
        const uint64_t cstart = i * kChunkSize;
        const uint64_t from = std::max(off, cstart), to = std::min(end, cstart + kChunkSize);
        if (data && from == cstart && to - cstart == chunk_plain_len(new_size, i)) {
            plain[i - c0] = data + (cstart - off);
            continue;
        }
        if (!merged) merged = scratch(kWritePlain, nchunks * kChunkSize);
        uint8_t* p = merged + (i - c0) * kChunkSize;
        const uint64_t old_len = chunk_plain_len(size, i);
        if (old_len > 0 && (off > cstart || end < cstart + old_len)) chunk_plain(f, path, i, p);
        if (data) std::memcpy(p + (from - cstart), data + (from - off), static_cast<size_t>(to - from));
        else std::memset(p + (from - cstart), 0, static_cast<size_t>(to - from));
        plain[i - c0] = p;
    }
    seal_and_store(f, path, c0, c1, new_size, plain, new_size > size);
    if (reseal) seal_and_store(f, path, old_last, old_last, new_size, {old_tail.data()}, false);

    f.size = new_size;
    if (new_last >= c0 && new_last <= c1) {
        const uint8_t* p = plain[new_last - c0];
        f.tail.plain.assign(p, p + chunk_plain_len(new_size, new_last));
        f.tail.index = new_last;
        f.tail.valid = true;
    } else if (f.tail.valid && f.tail.index != new_last) {
        f.tail.valid = false;
    }
}

void Volume::extend_locked(OpenFile& f, const std::string& path, uint64_t new_size) {
    // Refuse what no member file system can hold (ext4's 16 TiB).
    if (new_size > kMaxFileSize) throw_errno(EFBIG, path, "extend");
    // The last chunk is filled with sealed zeros up to its end; every whole
    // chunk past it is stored in the zero form (a hole on the member).
    const uint64_t boundary = chunk_count(f.size) * kChunkSize;
    if (f.size < boundary) write_locked(f, path, nullptr, f.size, std::min(new_size, boundary) - f.size);
    if (f.size < new_size) store_zero_chunks(f, path, new_size);
}

namespace {

// A zero-form chunk's nonce and tag at chunk idx (n plaintext bytes); the
// body between stays a hole. `punch`: the body may hold older bytes, which
// are punched out (zeroed) first.
int write_zero_chunk(int fd, uint64_t idx, size_t n, const uint8_t* nonce, const uint8_t* tag, bool punch) {
    const off_t at = static_cast<off_t>(stored_offset(idx));
    if (punch && n > 0 && ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at + kGcmNonce, static_cast<off_t>(n)) < 0) {
        if (errno != EOPNOTSUPP) return -errno;
        const Bytes zeros(n);
        if (int r = pwrite_full(fd, zeros.data(), n, at + kGcmNonce); r < 0) return r;
    }
    if (int r = pwrite_full(fd, nonce, kGcmNonce, at); r < 0) return r;
    return pwrite_full(fd, tag, kGcmTag, at + kGcmNonce + static_cast<off_t>(n));
}

bool zero_body(const uint8_t* sealed, size_t sl) {
    return std::all_of(sealed + kGcmNonce, sealed + sl - kGcmTag, [](uint8_t b) { return b == 0; });
}

}  // namespace

void Volume::store_zero_chunks(OpenFile& f, const std::string& path, uint64_t new_size) {
    // f.size ends on a chunk boundary (extend_locked filled the last chunk).
    const uint64_t a = f.size / kChunkSize, b = last_chunk(new_size);
    // Each zero chunk takes a block or two of the member (its two ends), not
    // 64 KiB. Recycling is not asked: a `truncate -s` must never delete recordings.
    if (!make_room((b - a + 1) * 8192, holders(f, true), false)) throw_errno(ENOSPC, path, "extend");
    std::vector<ZeroChunkEnds> ends(static_cast<size_t>(b - a + 1));
    set_.parallel_for(ends.size(), [&](size_t k) {
        ends[k] = seal_zero_chunk(f.key, f.hdr, a + k, a + k == b, static_cast<size_t>(chunk_plain_len(new_size, a + k)));
    });
    // The new last chunk first (it sets the stored length), then downwards:
    // a crash part way leaves a file whose end authenticates, with only
    // not-yet-written zeros unreadable, never data written before.
    const std::vector<size_t> targets = holders(f, true);
    std::array<std::atomic<int>, kMaxMembers> err{};
    set_.parallel_for(targets.size(), [&](size_t k) {
        const int fd = f.fds[targets[k]].get();
        for (uint64_t i = b + 1; i-- > a;) {
            const auto& e = ends[i - a];
            if (int r = write_zero_chunk(fd, i, static_cast<size_t>(chunk_plain_len(new_size, i)), e.nonce.data(), e.tag.data(), false)) {
                err[targets[k]] = r;
                return;
            }
        }
    });
    std::vector<std::pair<size_t, int>> results;
    for (size_t t : targets) results.emplace_back(t, err[t].load());
    check(set_.combine("write", path, results), "write", path);
    // The old last chunk stops being last.
    const uint64_t old_last = a - 1;
    Bytes old_tail(kChunkSize);
    chunk_plain(f, path, old_last, old_tail.data());
    seal_and_store(f, path, old_last, old_last, new_size, {old_tail.data()}, false);
    f.size = new_size;
    f.sparse = true;
    f.tail.valid = false;
}

size_t Volume::write(Handle& h, const uint8_t* buf, size_t size, uint64_t off) {
    OpenFile& f = *h.file;
    try {
        std::unique_lock lk(f.mu);
        if (off > f.size) extend_locked(f, h.path, off);  // a hole is stored as encrypted zeros
        write_locked(f, h.path, buf, off, size);
    } catch (const Error& e) {
        std::lock_guard lk(h.stats_mu);
        if (!h.first_error) h.first_error = e.code();
        throw;
    }
    written_ += size;
    std::lock_guard lk(h.stats_mu);
    h.bytes_written += size;
    return size;
}

void Volume::truncate_locked(OpenFile& f, const std::string& path, uint64_t new_size) {
    const uint64_t size = f.size;
    if (new_size == size) return;
    if (new_size > size) return extend_locked(f, path, new_size);
    f.reserved_to = 0;  // a shrinking truncate frees what lay past the new end
    std::vector<std::pair<size_t, int>> results;
    if (new_size == 0) {
        // A new generation: no chunk from before can be replayed into the file.
        f.hdr.generation++;
        const Bytes init = empty_file_image(f.hdr, f.key);
        for (size_t i : holders(f, true)) {
            int r = ::ftruncate(f.fds[i].get(), static_cast<off_t>(init.size())) < 0 ? neg_errno() : 0;
            if (r == 0) r = pwrite_full(f.fds[i].get(), init.data(), init.size(), 0);
            results.emplace_back(i, r);
        }
        check(set_.combine("truncate", path, results), "truncate", path);
        f.size = 0;
        f.tail.valid = true;
        f.tail.index = 0;
        f.tail.plain.clear();
        return;
    }
    const uint64_t nl = last_chunk(new_size);
    Bytes p(kChunkSize);
    chunk_plain(f, path, nl, p.data());
    const size_t pl = chunk_plain_len(new_size, nl);
    Bytes s(pl + kChunkOverhead);
    seal_chunk(f.key, f.hdr, nl, true, ByteView(p.data(), pl), s.data());
    for (size_t i : holders(f, true)) {
        int r = ::ftruncate(f.fds[i].get(), static_cast<off_t>(stored_size(new_size))) < 0 ? neg_errno() : 0;
        if (r == 0) r = pwrite_full(f.fds[i].get(), s.data(), s.size(), static_cast<off_t>(stored_offset(nl)));
        results.emplace_back(i, r);
    }
    check(set_.combine("truncate", path, results), "truncate", path);
    f.size = new_size;
    f.tail.plain.assign(p.begin(), p.begin() + static_cast<long>(pl));
    f.tail.index = nl;
    f.tail.valid = true;
}

std::string Volume::make_special(const std::string& path, Kind kind, mode_t perms, const std::string& content, const Caller& who) {
    const std::string rel = stored(path);
    if (!make_room(stored_size(content.size()), set_.writable_members())) throw_errno(ENOSPC, path, "create");
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

void Volume::fallocate(Handle& h, int mode, uint64_t off, uint64_t len, const Caller& who) {
    // Mode 0 and FALLOC_FL_KEEP_SIZE: space is reserved on every member for
    // the stored range; mode 0 also grows the file (with zero-form chunks).
    // Punching and collapsing would rewrite recordings in place: not offered.
    if (mode & ~FALLOC_FL_KEEP_SIZE) throw_errno(EOPNOTSUPP, h.path, "fallocate");
    if (len == 0) throw_errno(EINVAL, h.path, "fallocate");
    if (!h.writable) throw_errno(EBADF, h.path, "fallocate");
    const uint64_t end = off + len;
    if (end < off || end > kMaxFileSize) throw_errno(EFBIG, h.path, "fallocate");
    OpenFile& f = *h.file;
    std::shared_lock place(place_mu_);
    std::unique_lock lk(f.mu);
    const uint64_t old = f.size;
    try {
        if (!(mode & FALLOC_FL_KEEP_SIZE) && end > f.size) extend_locked(f, h.path, end);
        const uint64_t c0 = off / kChunkSize, c1 = (end - 1) / kChunkSize;
        const uint64_t begin = stored_offset(c0), stop = stored_offset(c1) + kStoredChunk;
        const auto members = holders(f, true);
        if (!make_room(stop - begin, members, false)) throw_errno(ENOSPC, h.path, "fallocate");
        std::vector<std::pair<size_t, int>> results;
        for (size_t i : members) {
            int r = ::fallocate(f.fds[i].get(), FALLOC_FL_KEEP_SIZE, static_cast<off_t>(begin), static_cast<off_t>(stop - begin));
            results.emplace_back(i, r < 0 && errno != EOPNOTSUPP ? neg_errno() : 0);
        }
        check(set_.combine("fallocate", h.path, results), "fallocate", h.path);
    } catch (const Error& e) {
        // Grown part way: the record says how far, as the ledger needs.
        if (f.size != old) {
            const Facts now = facts_locked(f);
            audit("truncate", who, h.path, e.code(), [&](nlohmann::json& r) {
                r["bytes"] = now.size;
                r["from"] = old;
                r["by"] = "fallocate";
                now.record_in(r);
            });
        }
        throw;
    }
    if (f.size != old) {
        const Facts now = facts_locked(f);  // the ledger's record of the grown file
        audit("truncate", who, h.path, 0, [&](nlohmann::json& r) {
            r["bytes"] = now.size;
            r["from"] = old;
            r["by"] = "fallocate";
            now.record_in(r);
        });
    }
}

void Volume::truncate(const std::string& path, uint64_t size, Handle* h, const Caller& who) {
    std::shared_lock place(place_mu_);
    std::shared_ptr<Handle> own;
    uint64_t old = 0;
    std::optional<Facts> part;  // a truncate that failed part way: where it stopped
    try {
        if (!h) {
            own = pin(path);
            if (!own) throw_errno(ENOENT, path, "truncate");
            h = own.get();
        }
        std::unique_lock lk(h->file->mu);
        old = h->file->size;
        try {
            truncate_locked(*h->file, path, size);
        } catch (const Error&) {
            if (h->file->size != old) part = facts_locked(*h->file);
            throw;
        }
        const Facts now = facts_locked(*h->file);
        lk.unlock();
        audit("truncate", who, path, 0, [&](nlohmann::json& r) {
            r["bytes"] = size;
            r["from"] = old;
            now.record_in(r);
        });
    } catch (const Error& e) {
        audit("truncate", who, path, e.code(), [&](nlohmann::json& r) {
            if (!part) return;
            r["from"] = old;
            part->record_in(r);
        });
        throw;
    }
}

}  // namespace nvrfs

namespace nvrfs {

// ---- rebuild and scrub ---------------------------------------------------

void Volume::copy_dir_to(const std::string& path, size_t target) {
    const std::string rel = stored(path);
    const DirIv iv = diriv(path, rel);  // compared across members and authenticated by the names
    const int t = set_.member(target).dirfd.get();
    const std::string where = set_.member(target).path + "/" + rel;
    for (size_t i : set_.healthy_members()) {
        struct stat st {};
        if (member_path::stat(set_.member(i).dirfd.get(), rel, st) < 0 || !S_ISDIR(st.st_mode)) continue;
        if (rel != ".") {
            struct stat have {};
            const int r = member_path::stat(t, rel, have);
            if (r == 0 && !S_ISDIR(have.st_mode)) {
                // Something else stands where the directory goes: not ours to follow.
                if (int u = member_path::unlink(t, rel); u < 0) throw_errno(-u, where, "cannot remove");
            }
            if (int p = put_side(t, side_of(path, rel)); p < 0) throw_errno(-p, where, "cannot create its long-name file");
            if (r < 0 || !S_ISDIR(have.st_mode))
                if (int m = member_path::mkdir(t, rel, 0700); m < 0 && m != -EEXIST) throw_errno(-m, where, "cannot create directory");
        }
        if (int r = write_iv(t, join_rel(rel, kDirIvName), iv); r < 0) throw_errno(-r, where + "/" + kDirIvName, "cannot create");
        if (rel == ".") {
            std::lock_guard lk(root_mu_);
            if (int r = write_root_attr(t, root_attr_); r < 0) throw_errno(-r, where + "/" + kRootAttrPath, "cannot create");
            return;  // the member root itself keeps its own owner and 0700
        }
        const int d = member_path::open_dir(t, rel);
        if (d < 0) throw_errno(-d, where, "cannot open");
        UniqueFd own(d);
        copy_meta(d, st);
        return;
    }
}

std::shared_ptr<Handle> Volume::pin(const std::string& path) {
    try {
        return std::shared_ptr<Handle>(open_any(path, O_RDONLY, Caller{}).release(),
                                       [this](Handle* h) { release(std::unique_ptr<Handle>(h)); });
    } catch (const Error& e) {
        if (e.code() == ENOENT) return nullptr;  // deleted meanwhile
        throw;
    }
}

uint64_t Volume::copy_file_to(const std::string& path, size_t target) {
    const auto h = pin(path);
    if (!h) return 0;
    const std::string rel = stored(path);
    OpenFile& f = *h->file;
    std::unique_lock lk(f.mu);
    const std::vector<size_t> sources = holders(f, false);
    if (sources.empty()) throw_errno(EIO, path, "no complete member holds");
    struct stat st {};
    if (::fstat(f.fds[sources.front()].get(), &st) < 0) throw_errno(errno, path, "cannot stat");
    Member& t = set_.member(target);
    const std::string where = t.path + "/" + rel;
    // The target's own copy (a member coming back stale) is kept where it is
    // authentic and the sources' is not: a rebuild never trades a good chunk
    // for a bad one. Anything else at that name is replaced.
    int fd = member_path::open_file(t.dirfd.get(), rel, O_RDWR);
    if (fd < 0 && fd != -ENOENT) {
        if (int u = member_path::unlink(t.dirfd.get(), rel); u < 0 && u != -ENOENT) throw_errno(-u, where, "cannot remove");
        fd = -ENOENT;
    }
    if (fd == -ENOENT) {
        fd = put_side(t.dirfd.get(), side_of(path, rel));
        if (fd == 0) fd = member_path::open_file(t.dirfd.get(), rel, O_RDWR | O_CREAT | O_EXCL, 0600);
    }
    if (fd < 0) throw_errno(-fd, where, "cannot create");
    UniqueFd out(fd);
    uint8_t th[kHeaderSize];
    const bool same_file = pread_full(fd, th, sizeof th, 0) == static_cast<ssize_t>(kHeaderSize) && FileHeader::decode(th) == f.hdr;
    std::vector<size_t> candidates = sources;
    if (same_file) {
        f.fds[target] = UniqueFd(::dup(fd));
        candidates.push_back(target);
    }
    const uint64_t size = f.size, n = chunk_count(size);
    const auto hdr = f.hdr.encode();
    int err = pwrite_full(fd, hdr.data(), hdr.size(), 0);
    // Chunks are authenticated in batches on every core, then written.
    constexpr uint64_t kBatch = 16;
    Bytes sealed(kBatch * kStoredChunk), plain(kBatch * kChunkSize);
    std::vector<std::optional<size_t>> src(kBatch);
    uint64_t lost = 0;
    for (uint64_t c0 = 0; c0 < n && err == 0; c0 += kBatch) {
        const uint64_t c1 = std::min(n, c0 + kBatch);
        set_.parallel_for(static_cast<size_t>(c1 - c0), [&](size_t k) {
            src[k] = find_authentic(f, c0 + k, size, candidates, sealed.data() + k * kStoredChunk, plain.data() + k * kChunkSize);
        });
        for (uint64_t c = c0; c < c1 && err == 0; ++c) {
            const auto& s = src[c - c0];
            if (!s) {
                ++lost;
                continue;
            }
            if (*s == target) continue;  // already authentic there
            const size_t sl = chunk_plain_len(size, c) + kChunkOverhead;
            const uint8_t* sc = sealed.data() + (c - c0) * kStoredChunk;
            if (zero_body(sc, sl))  // a hole stays a hole on the new copy
                err = write_zero_chunk(fd, c, sl - kChunkOverhead, sc, sc + sl - kGcmTag, same_file);
            else
                err = pwrite_full(fd, sc, sl, static_cast<off_t>(stored_offset(c)));
        }
    }
    if (same_file) f.fds[target].reset();
    if (err == 0 && ::ftruncate(fd, static_cast<off_t>(stored_size(size))) < 0) err = -errno;
    if (err < 0) {
        set_.fail(target, -err, "rebuild " + path);
        throw_errno(-err, where, "cannot copy");
    }
    if (lost)
        alerts_.raise(alert::TamperDetected,
                      fmt::format("rebuild: {}: {} chunk(s) authentic on no member; not copied (reads of them fail)", path, lost),
                      path);
    copy_meta(fd, st);
    f.fds[target] = std::move(out);
    return stored_size(size);
}

void Volume::scrub_dir(const std::string& path, bool repair, ScrubStats& stats) {
    const std::string rel = stored(path);
    const DirIv iv = diriv(path, rel);
    for (size_t i : set_.healthy_members()) {
        const int root = set_.member(i).dirfd.get();
        for (const auto& n : list_stored(root, rel).stored) {
            if (entry_name(root, rel, iv, n)) continue;
            // Planted or altered: moved aside (kept as evidence, out of the
            // namespace), never deleted; the file it hid is restored from
            // another member by scrub_file.
            stats.bad++;
            if (!repair) continue;
            member_path::mkdir(root, kQuarantineDir, 0700);
            std::array<uint8_t, 8> rnd{};
            random_bytes(rnd);
            const std::string to = std::string(kQuarantineDir) + "/" + hex(rnd);
            if (member_path::rename(root, join_rel(rel, n), to, RENAME_NOREPLACE) == 0) {
                stats.repaired++;
                alerts_.raise(alert::TamperRepaired,
                              fmt::format("scrub: {}: an entry that is no nvrfs name on {} was moved to {}/{}", path,
                                          set_.member(i).path, set_.member(i).path, to),
                              path);
            }
        }
    }
}

bool Volume::incomplete(const std::string& path) {
    const std::string rel = stored(path);
    size_t seen = 0;
    for (size_t i : set_.healthy_members()) {
        struct stat st {};
        if (member_path::stat(set_.member(i).dirfd.get(), rel, st) < 0) continue;
        if (!S_ISREG(st.st_mode) || st.st_size != 0) return false;
        ++seen;
    }
    return seen > 0;
}

void Volume::scrub_file(const std::string& path, bool repair, ScrubStats& stats) {
    if (hidden_name(path) && !is_open(path)) {
        // Unlinked while open, then the daemon stopped before it closed: the
        // file was already deleted; --repair finishes that (audited).
        if (repair) unlink(path, Caller::daemon(), [](nlohmann::json& r) { r["reason"] = "unlinked while open before a restart"; });
        return;
    }
    if (incomplete(path)) {
        stats.files++;
        stats.bad++;
        if (repair) {
            unlink(path, Caller::daemon(), [](nlohmann::json& r) { r["reason"] = "incomplete create removed by scrub"; });
            stats.repaired++;
            alerts_.raise(alert::TamperRepaired, fmt::format("scrub: {} was an incomplete file (a create that never "
                                                             "completed, no byte stored); removed", path), path);
        } else {
            stats.unrepairable++;
        }
        return;
    }
    const auto h = pin(path);
    if (!h) return;
    OpenFile& f = *h->file;
    if (repair) {
        // A complete member that lacks the file (its name was altered or
        // removed there) gets a verified copy.
        for (size_t i : set_.healthy_members()) {
            if (f.fds[i]) continue;
            stats.bad++;
            copy_file_to(path, i);
            stats.repaired++;
            alerts_.raise(alert::TamperRepaired, fmt::format("scrub: {} was missing on {}; restored from an authentic copy", path,
                                                             set_.member(i).path), path);
        }
    }
    std::shared_lock lk(f.mu);
    const uint64_t size = f.size, n = chunk_count(size), last = last_chunk(size);
    const std::vector<size_t> members = holders(f, false);
    stats.files++;
    // Every member is checked on its own thread: the disks are read and the
    // chunks authenticated at once (what it finds differs only per member).
    struct PerMember {
        ScrubStats stats;
        std::vector<uint64_t> bad;
    };
    std::vector<PerMember> per(members.size());
    set_.parallel_for(members.size(), [&](size_t k) {
        const size_t i = members[k];
        ScrubStats& st = per[k].stats;
        Bytes buf(16 * kStoredChunk), good(kStoredChunk), plain(kChunkSize);
        for (uint64_t c0 = 0; c0 < n; c0 += 16) {
            const uint64_t c1 = std::min(n - 1, c0 + 15);
            const uint64_t len = stored_offset(c1) + chunk_plain_len(size, c1) + kChunkOverhead - stored_offset(c0);
            ssize_t got = pread_full(f.fds[i].get(), buf.data(), static_cast<size_t>(len), static_cast<off_t>(stored_offset(c0)));
            if (got < 0) got = 0;
            size_t pos = 0;
            for (uint64_t c = c0; c <= c1; ++c) {
                const size_t sl = chunk_plain_len(size, c) + kChunkOverhead;
                st.chunks++;
                st.bytes += sl;
                const bool ok = pos + sl <= static_cast<size_t>(got) && open_stored_chunk(f, c, last, ByteView(buf.data() + pos, sl), plain.data());
                pos += sl;
                if (ok) continue;
                st.bad++;
                per[k].bad.push_back(c);
                bool fixed = false;
                for (size_t j : members) {
                    if (j == i) continue;
                    if (pread_full(f.fds[j].get(), good.data(), sl, static_cast<off_t>(stored_offset(c))) != static_cast<ssize_t>(sl) ||
                        !open_stored_chunk(f, c, last, ByteView(good.data(), sl), plain.data()))
                        continue;
                    fixed = true;
                    if (repair && pwrite_full(f.fds[i].get(), good.data(), sl, static_cast<off_t>(stored_offset(c))) == 0) {
                        st.repaired++;
                        set_.member(i).repaired++;
                    }
                    break;
                }
                if (!fixed) st.unrepairable++;
            }
        }
    });
    std::vector<uint64_t> bad_chunks;
    for (const auto& p : per) {
        stats += p.stats;
        bad_chunks.insert(bad_chunks.end(), p.bad.begin(), p.bad.end());
    }
    std::sort(bad_chunks.begin(), bad_chunks.end());
    // Both copies authentic but not the same bytes: a crash came between
    // resealing a chunk on one member and on the other. Make the mirror
    // byte-identical again (either copy is right; the first member's wins).
    if (repair && members.size() > 1) {
        Bytes buf(16 * kStoredChunk), other(16 * kStoredChunk), plain(kChunkSize);
        for (uint64_t c0 = 0; c0 < n; c0 += 16) {
            const uint64_t c1 = std::min(n - 1, c0 + 15);
            const size_t len = static_cast<size_t>(stored_offset(c1) + chunk_plain_len(size, c1) + kChunkOverhead - stored_offset(c0));
            if (pread_full(f.fds[members[0]].get(), buf.data(), len, static_cast<off_t>(stored_offset(c0))) != static_cast<ssize_t>(len)) continue;
            for (size_t k = 1; k < members.size(); ++k) {
                const int fd = f.fds[members[k]].get();
                if (pread_full(fd, other.data(), len, static_cast<off_t>(stored_offset(c0))) == static_cast<ssize_t>(len) &&
                    std::memcmp(buf.data(), other.data(), len) == 0)
                    continue;
                size_t pos = 0;
                for (uint64_t c = c0; c <= c1; ++c) {
                    const size_t sl = chunk_plain_len(size, c) + kChunkOverhead;
                    if (std::memcmp(buf.data() + pos, other.data() + pos, sl) != 0 &&
                        open_stored_chunk(f, c, last, ByteView(buf.data() + pos, sl), plain.data()) &&
                        pwrite_full(fd, buf.data() + pos, sl, static_cast<off_t>(stored_offset(c))) == 0)
                        stats.resynced++;
                    pos += sl;
                }
            }
        }
    }
    if (!bad_chunks.empty())
        alerts_.raise(alert::TamperDetected,
                      fmt::format("scrub: {}: {} bad chunk copies (first: chunk {}){}", path, bad_chunks.size(), bad_chunks.front(),
                                  repair ? "; repaired where a good copy exists" : "; run scrub --repair"),
                      path);
}

}  // namespace nvrfs
