// volume_open.cpp — open files: choosing a header, reconciling lengths, create/open/release, facts.
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

// ---- open files ----------------------------------------------------------

// Tests widen a race window with these (t32).
static const int kOpenDelayMs = env_ms("NVRFS_OPEN_DELAY_MS"), kCreateDelayMs = env_ms("NVRFS_CREATE_DELAY_MS");
static const int kFirstRecordDelayMs = env_ms("NVRFS_FIRST_RECORD_DELAY_MS");

FileHeader Volume::choose_header(OpenFile& f, const std::string& path, bool settle) {
    struct Cand {
        size_t member;
        std::optional<FileHeader> hdr;
    };
    std::vector<Cand> cands;
    // No member holds more than a create's space taken ahead (fallocate's
    // zeros, or nothing): a create under way on another thread, or one that
    // never completed. Nothing was recorded in it, so nothing is alerted.
    bool unwritten = true;
    for (size_t i : holders(f, false)) {
        uint8_t b[kHeaderSize];
        std::optional<FileHeader> h;
        const ssize_t n = pread_full(f.fds[i].get(), b, sizeof b, 0);
        if (n == static_cast<ssize_t>(kHeaderSize)) h = FileHeader::decode(b);
        struct stat st {};
        unwritten = unwritten && n >= 0 && std::all_of(b, b + n, [](uint8_t x) { return x == 0; }) &&
                    ::fstat(f.fds[i].get(), &st) == 0 && static_cast<uint64_t>(st.st_size) <= kHeaderSize + kChunkOverhead;
        cands.push_back({i, h});
    }
    if (cands.empty()) throw_errno(EIO, path, "no member holds");
    if (unwritten)
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
        // Not yet the file's only holder: another may be rewriting the header
        // (a truncate to zero) right now, so nothing is repaired or alerted
        // until nobody else holds it.
        if (!settle) return *c.hdr;
        const auto good = c.hdr->encode();
        for (auto& o : cands)
            if (o.hdr != c.hdr) pwrite_full(f.fds[o.member].get(), good.data(), good.size(), 0);
        alerts_.raise(alert::TamperRepaired, fmt::format("{}: file header differed between members; repaired from {}", path,
                                                         set_.member(c.member).path), path);
        return *c.hdr;
    }
    if (!settle)
        for (auto& c : cands)
            if (c.hdr) return *c.hdr;  // any names the file; judged once it is ours alone
    alerts_.raise(alert::TamperDetected, fmt::format("{}: no member holds an authentic file header", path), path);
    throw Error(EIO, path, "corrupt file header: " + path);
}

void Volume::load_stored(OpenFile& f, const std::string& path, bool settle) {
    f.hdr = choose_header(f, path, settle);
    f.key = file_key(set_.keys().content, f.hdr);
    uint64_t best = 0;
    bool any_valid = false;
    // Only complete members say how long the file is: a member being rebuilt
    // (back from a failure) may hold a copy from before a truncate.
    for (size_t i : holders(f, false)) {
        struct stat st {};
        if (::fstat(f.fds[i].get(), &st) < 0) continue;
        auto ps = plain_size(f.hdr.version, static_cast<uint64_t>(st.st_size));
        if (ps && (!any_valid || *ps > best)) best = *ps, any_valid = true;
        if (!any_valid) best = std::max(best, plain_size_lenient(static_cast<uint64_t>(st.st_size)));
    }
    f.size = best;
}

std::shared_ptr<OpenFile> Volume::open_stored(const std::string& path, const std::string& rel, int extra_flags, mode_t mode,
                                              const Caller* creator, Kind kind, bool settle) {
    auto f = std::make_shared<OpenFile>();
    f->fds.resize(kMaxMembers);
    std::array<struct stat, kMaxMembers> found {};  // what each member's open found
    if (!(extra_flags & O_CREAT)) await_create(path);
    const auto side = (extra_flags & O_CREAT) ? side_of(path, rel) : std::nullopt;
    check(set_.combine("open", path, open_members(*f, rel, extra_flags, mode, side, found, settle)), "open", path);
    bool fresh = false;
    for (size_t i = 0; creator && i < kMaxMembers; ++i) fresh = fresh || (f->fds[i] && found[i].st_size == 0);
    if (fresh) {
        // A new file: one header and one sealed empty chunk, the same bytes on every member.
        random_bytes(f->hdr.id);
        f->hdr.kind = kind;
        f->hdr.version = new_file_version_;
        if (kind == Kind::Fifo || kind == Kind::Socket) f->hdr.perms = static_cast<uint16_t>(mode & 07777);
        // A member file of mode 0 says "read the header": the kind is there.
        if (kind != Kind::File) mode = 0;
        f->key = file_key(set_.keys().content, f->hdr);
        f->size = 0;
        f->tail.valid = true;
        f->tail.index = 0;
        // In the table before any member holds the header: an open that reads
        // it from one member while the next is still being written (a stat,
        // the recycler) joins this file instead of "repairing" the other.
        open_.acquire(f->hdr.id, f);
        const Bytes init = empty_file_image(f->hdr, f->key);
        std::vector<std::pair<size_t, int>> wr;
        for (size_t i : holders(*f, true)) {
            int r = ::fallocate(f->fds[i].get(), 0, 0, static_cast<off_t>(init.size())) < 0 && errno != EOPNOTSUPP ? neg_errno() : 0;
            test_delay(kCreateDelayMs);
            if (r == 0) r = pwrite_full(f->fds[i].get(), init.data(), init.size(), 0);
            // Created by nvrfsd: owned by the caller only when the caller is
            // nvrfsd's own user (a recorder running as root), and given
            // nvrfsd's umask, which the caller's (already applied by the
            // kernel) replaces. Each call is a journalled inode update: made
            // only when something is to change.
            const struct stat& st = found[i];
            const bool owned = st.st_uid == creator->uid && st.st_gid == creator->gid;
            if (r == 0 && !owned && ::fchown(f->fds[i].get(), creator->uid, creator->gid) < 0) r = neg_errno();
            // (A write clears set-id bits without CAP_FSETID: those always set.)
            const bool same_mode = (st.st_mode & 07777) == (mode & 07777) && !(mode & 06000);
            if (r == 0 && (!owned || !same_mode) && ::fchmod(f->fds[i].get(), mode & 07777) < 0) r = neg_errno();
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
            open_.release(f);
            check(r, "create", path);
        }
        return f;
    }
    load_stored(*f, path, false);
    test_delay(kOpenDelayMs);  // t32 closes another holder inside this window
    auto shared = open_.acquire(f->hdr.id, f);
    if (shared == f) {
        // First opener: nobody can write until the copies agree in length.
        std::unique_lock lk(f->mu);
        try {
            // What was read above may predate the last holder's close: a
            // truncate that had reached one member, a generation not yet
            // written. Nobody else holds the file now: read it again.
            const FileId id = f->hdr.id;
            load_stored(*f, path, true);
            if (f->hdr.id != id) {
                f->hdr.id = id;  // the table knows it by this one
                throw Error(EIO, path, path + ": its header changed while it was opened");
            }
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
    const size_t sl = static_cast<size_t>(stored_chunk_len(size, idx));
    for (size_t j : from) {
        if (pread_full(f.fds[j].get(), sealed, sl, static_cast<off_t>(stored_offset(idx))) == static_cast<ssize_t>(sl) &&
            open_stored_chunk(f, idx, last_chunk(f.hdr.version, size), ByteView(sealed, sl), plain))
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
        auto ps = plain_size(f.hdr.version, len);
        if (!ps) continue;
        const uint64_t li = last_chunk(f.hdr.version, *ps);
        const size_t sl = static_cast<size_t>(stored_chunk_len(*ps, li));
        if (pread_full(f.fds[g].get(), sealed.data(), sl, static_cast<off_t>(stored_offset(li))) != static_cast<ssize_t>(sl) ||
            !open_chunk(f.key, f.hdr, li, true, ByteView(sealed.data(), sl), plain.data()))
            continue;
        f.size = *ps;
        uint64_t unrecoverable = 0;
        std::vector<std::pair<size_t, int>> results;  // members whose copy is not this length
        for (auto [j, jl] : lens)
            if (jl != len) results.emplace_back(j, 0);
        for (uint64_t c = f.hdr.archived ? li : 0; c <= li; ++c) {
            const auto src = find_authentic(f, c, *ps, members, sealed.data(), plain.data());
            if (!src) {
                ++unrecoverable;
                continue;
            }
            const size_t csl = static_cast<size_t>(stored_chunk_len(*ps, c));
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

// What an open would conclude of an empty file, without one: a read of each
// copy (no read-write open, no entry in the open-file table). A stat of an
// empty file cost twice that of any other before.
bool Volume::authentic_empty(const std::string& rel) {
    using Image = std::array<uint8_t, kHeaderSize + kChunkOverhead>;
    std::optional<Image> first;
    for (size_t i : set_.healthy_members()) {
        const int fd = member_path::open_file(set_.member(i).dirfd.get(), rel, O_RDONLY);
        if (fd < 0) return false;
        UniqueFd own(fd);
        Image b;
        if (pread_full(fd, b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) return false;
        if (first && *first != b) return false;
        first = b;
    }
    if (!first) return false;
    const auto hdr = FileHeader::decode(std::span<const uint8_t>(first->data(), kHeaderSize));
    if (!hdr || hdr->kind != Kind::File) return false;
    uint8_t none[1];
    return open_chunk(file_key(set_.keys().content, *hdr), *hdr, 0, true, ByteView(first->data() + kHeaderSize, kChunkOverhead), none);
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
        const Creating creating(*this, path);
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
        auto h = open_any(path, flags, who, true);
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

std::unique_ptr<Handle> Volume::open_any(const std::string& path, int flags, const Caller& who, bool settle) {
    const std::string rel = stored(path);
    auto h = std::make_unique<Handle>();
    h->file = open_stored(path, rel, 0, 0, nullptr, Kind::File, settle);
    h->path = path;
    h->writable = (flags & O_ACCMODE) != O_RDONLY;
    h->who = who;
    if (h->writable && (flags & O_TRUNC)) {
        std::shared_lock place(place_mu_);
        const uint64_t old = h->file->size;
        try {
            {
                std::unique_lock lk(h->file->mu);
                truncate_locked(*h->file, path, 0);
            }
            record_facts("truncate", who, *h, path, 0, [&](nlohmann::json& r, const Facts&) {
                r["bytes"] = 0;
                r["from"] = old;
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

// What the audit log records of a file's contents at each close (the
// namespace ledger, ledger.hpp): its id and the tag that ends its last chunk.
Volume::Facts Volume::facts_locked(const OpenFile& f) const {
    Facts out;
    out.id = hex(f.hdr.id);
    out.size = f.size.load();
    const uint64_t end = stored_size(f.hdr.version, out.size);
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
    const auto h = pin(path, true);  // scrub asks, holding no place lock, while files are removed
    if (!h) return std::nullopt;
    std::shared_lock lk(h->file->mu);
    return facts_locked(*h->file);
}

void Volume::record_facts(const std::string& event, const Caller& who, const Handle& h,
                          const std::optional<std::string>& name, int err,
                          const std::function<void(nlohmann::json&, const Facts&)>& extra) {
    std::lock_guard order(records_mu_);
    Facts now;
    {
        std::shared_lock lk(h.file->mu);
        now = facts_locked(*h.file);
    }
    if (kFirstRecordDelayMs > 0 && event == "write" && !record_delayed_.exchange(true))
        test_delay(kFirstRecordDelayMs);  // t42: another writer closes meanwhile
    audit(event, who, name ? *name : name_now(h), err, [&](nlohmann::json& r) {
        if (extra) extra(r, now);
        now.record_in(r);
    });
}

bool Volume::record_contents(const std::string& event, const Caller& who, const std::string& path,
                             const std::function<void(nlohmann::json&)>& extra) {
    const auto h = pin(path, true);
    if (!h) return false;
    record_facts(event, who, *h, path, 0, [&](nlohmann::json& r, const Facts&) {
        if (extra) extra(r);
    });
    return true;
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
    // A write session is audited at its close, with what the ledger needs;
    // a read-write open that wrote nothing reads nothing more.
    const bool session = h->writable && (h->bytes_written > 0 || h->first_error);
    if (h->writable) {
        std::unique_lock lk(h->file->mu);
        release_reserve(*h->file);
        drop_written_out(*h->file);
    }
    if (session) {
        // Under the name it has now (a segment renamed while still open).
        record_facts("write", h->who, *h, std::nullopt, h->first_error, [&](nlohmann::json& r, const Facts&) {
            r["bytes"] = h->bytes_written;
            if (r["path"] != h->path) r["opened_as"] = h->path;
        });
    }
    // Still among the open ones until its record is written: the last
    // handle of an orphan to be done removes it, after every write record.
    std::string gone, now;
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
        if (!place.owns_lock()) place.lock();  // the members agree again before a listing looks
        // libfuse cannot name a file whose directory is gone, so the daemon
        // removes it itself when it closes.
        set_.fan_out("unlink", now, [&](size_t, Member& m) {
            const int r = member_path::unlink(m.dirfd.get(), gone);
            member_path::rmdir(m.dirfd.get(), kOrphanDir);  // when it was the last one
            return r;
        });
        audit("unlink", Caller::daemon(), now, 0, [&](nlohmann::json& r) { r["reason"] = "last handle of a file unlinked while open closed"; });
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

}  // namespace nvrfs
