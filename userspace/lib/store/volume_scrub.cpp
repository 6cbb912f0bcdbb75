// volume_scrub.cpp — rebuild copies and scrub.
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

// t32 unlinks a file while scrub or a rebuild is about to copy it onto a member.
static const int kRestoreDelayMs = env_ms("NVRFS_RESTORE_DELAY_MS");

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

std::shared_ptr<Handle> Volume::pin(const std::string& path, bool settle) {
    try {
        return std::shared_ptr<Handle>(open_any(path, O_RDONLY, Caller{}, settle).release(),
                                       [this](Handle* h) { release(std::unique_ptr<Handle>(h)); });
    } catch (const Error& e) {
        if (e.code() == ENOENT) return nullptr;  // deleted meanwhile
        throw;
    }
}

namespace {

// The spare's disk writes one batch while the next is read and authenticated.
void start_write_out(int fd, uint64_t from, uint64_t to) {
    ::sync_file_range(fd, static_cast<off64_t>(from), static_cast<off64_t>(to - from), SYNC_FILE_RANGE_WRITE);
}

}  // namespace

// The chunks of f onto `fd` (member `target`), each from the first
// candidate where it is authentic; `lost` counts those authentic nowhere.
// 0 or the first -errno writing them.
int Volume::copy_chunks(OpenFile& f, int fd, size_t target, const std::vector<size_t>& candidates, bool same_file, uint64_t& lost) {
    const uint64_t size = f.size, n = chunk_count(f.hdr.version, size);
    constexpr uint64_t kBatch = 64;  // read at once, authenticated on every core, written, write-out started
    Bytes plain(kBatch * kChunkSize);
    std::vector<std::optional<size_t>> src(kBatch);
    const std::vector<size_t> others(candidates.begin() + 1, candidates.end());
    const size_t first_src = candidates.front();
    UncachedReader reader(f.fds[first_src].get());
    // An archived file's chunks but the last are in the archive: holes here.
    const uint64_t first = f.hdr.archived ? last_chunk(f.hdr.version, size) : 0;
    if (f.hdr.archived && same_file)
        ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(kHeaderSize),
                    static_cast<off_t>(stored_offset(first) - kHeaderSize));
    int err = 0;
    for (uint64_t c0 = first; c0 < n && err == 0; c0 += kBatch) {
        const uint64_t c1 = std::min(n, c0 + kBatch);
        const auto at = [&](uint64_t c) { return static_cast<size_t>(stored_offset(c) - stored_offset(c0)); };
        const auto len = [&](uint64_t c) { return static_cast<size_t>(stored_chunk_len(size, c)); };
        // The batch as it lies on the first source, in one read; a chunk
        // that is not authentic there is looked for on the others.
        uint8_t* sealed = nullptr;
        const ssize_t got = reader.read(stored_offset(c0), static_cast<size_t>(stored_end(size, c1 - 1) - stored_offset(c0)), sealed);
        set_.parallel_for(static_cast<size_t>(c1 - c0), [&](size_t k) {
            const uint64_t c = c0 + k;
            uint8_t* sc = sealed + at(c);
            src[k] = got >= static_cast<ssize_t>(at(c) + len(c)) &&
                             open_stored_chunk(f, c, last_chunk(f.hdr.version, size), ByteView(sc, len(c)), plain.data() + k * kChunkSize)
                         ? std::optional<size_t>(first_src)
                         : find_authentic(f, c, size, others, sc, plain.data() + k * kChunkSize);
        });
        // Runs of chunks to copy go down in one write each, as they lie.
        uint64_t run = c1;
        const auto flush = [&](uint64_t upto) {
            if (run < upto && err == 0)
                err = pwrite_full(fd, sealed + at(run), static_cast<size_t>(stored_end(size, upto - 1) - stored_offset(run)),
                                  static_cast<off_t>(stored_offset(run)));
            run = c1;
        };
        for (uint64_t c = c0; c < c1 && err == 0; ++c) {
            const auto& s = src[c - c0];
            const uint8_t* sc = sealed + at(c);
            if (s && *s != target && !zero_body(sc, len(c))) {
                if (run == c1) run = c;
                continue;
            }
            flush(c);
            if (!s) ++lost;
            else if (*s != target && err == 0)  // a hole stays a hole on the new copy
                err = write_zero_chunk(fd, c, len(c) - kChunkOverhead, sc, sc + len(c) - kGcmTag, same_file);
        }
        flush(c1);
        start_write_out(fd, stored_offset(c0), stored_offset(c1));
        // The batch two back: its write-out was started two batches ago.
        if (c0 >= first + 2 * kBatch) drop_pages(fd, stored_offset(c0 - 2 * kBatch), stored_offset(c0 - kBatch));
    }
    return err;
}

uint64_t Volume::copy_file_to(const std::string& path, size_t target) {
    const auto h = pin(path);
    if (!h) return 0;
    test_delay(kRestoreDelayMs);
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
    // Another file's copy (the name was deleted and created again, or cut to
    // zero, while the member was away): none of it is kept, not even between
    // the two ends of a hole.
    if (!same_file && ::ftruncate(fd, 0) < 0) {
        const int e = errno;
        set_.fail(target, e, "rebuild " + path);
        throw_errno(e, where, "cannot copy");
    }
    std::vector<size_t> candidates = sources;
    if (same_file) {
        f.fds[target] = UniqueFd(::dup(fd));
        candidates.push_back(target);
    }
    const uint64_t size = f.size;
    const auto hdr = f.hdr.encode();
    int err = pwrite_full(fd, hdr.data(), hdr.size(), 0);
    uint64_t lost = 0;
    if (err == 0) err = copy_chunks(f, fd, target, candidates, same_file, lost);
    if (same_file) f.fds[target].reset();
    if (err == 0 && ::ftruncate(fd, static_cast<off_t>(stored_size(f.hdr.version, size))) < 0) err = -errno;
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
    return stored_size(f.hdr.version, size);
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

// A name whose file needs no chunk check: unlinked while open before a
// restart, or a create that never stored a byte. True when it was one.
bool Volume::scrub_leftover(const std::string& path, bool repair, ScrubStats& stats) {
    if (hidden_name(path) && !is_open(path)) {
        // Unlinked while open, then the daemon stopped before it closed: the
        // file was already deleted; --repair finishes that (audited).
        if (repair) unlink(path, Caller::daemon(), [](nlohmann::json& r) { r["reason"] = "unlinked while open before a restart"; });
        return true;
    }
    if (!incomplete(path)) return false;
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
    return true;
}

// Every chunk on every member, each copy read once. Copies that are the
// same bytes are authenticated once: a mirror in step costs one copy's
// crypto, and only copies that differ are judged each on its own. A bad
// copy is rewritten (with `repair`) from the first authentic one; copies
// that are all authentic but differ (a crash came between resealing a chunk
// on one member and the other) are made byte-identical again, the first
// authentic copy winning.
void Volume::scrub_copies(OpenFile& f, const std::vector<size_t>& members, bool repair, ScrubStats& st,
                          std::vector<uint64_t>& bad) {
    const uint64_t size = f.size, n = chunk_count(f.hdr.version, size), last = last_chunk(f.hdr.version, size);
    const size_t m = members.size();
    constexpr uint64_t kBatch = 32;
    // Read straight from the disks (io.hpp): a scrub must not push the
    // recordings being played out of memory. (Reading the next batch while
    // this one is authenticated was tried: slower here, 1.46 s against 1.25.)
    std::vector<UncachedReader> readers;
    for (size_t k = 0; k < m; ++k) readers.emplace_back(f.fds[members[k]].get());
    std::vector<uint8_t*> copy(m);
    std::vector<ssize_t> got(m);
    Bytes plain(kBatch * kChunkSize);
    // Per chunk of the batch and member: the first member holding the same
    // bytes (itself when none before it does), and whether they authenticate.
    std::vector<std::array<uint8_t, kMaxMembers>> same(kBatch), ok(kBatch);
    for (uint64_t c0 = f.hdr.archived ? last : 0; c0 < n; c0 += kBatch) {
        const uint64_t c1 = std::min(n - 1, c0 + kBatch - 1);
        const auto at = [&](uint64_t c) { return static_cast<size_t>(stored_offset(c) - stored_offset(c0)); };
        set_.parallel_for(m, [&](size_t k) {
            got[k] = std::max<ssize_t>(0, readers[k].read(stored_offset(c0), static_cast<size_t>(stored_end(size, c1) - stored_offset(c0)), copy[k]));
        });
        set_.parallel_for(static_cast<size_t>(c1 - c0 + 1), [&](size_t j) {
            const uint64_t c = c0 + j;
            const size_t pos = at(c), sl = static_cast<size_t>(stored_chunk_len(size, c));
            for (size_t k = 0; k < m; ++k) {
                same[j][k] = static_cast<uint8_t>(k);
                ok[j][k] = false;
                if (pos + sl > static_cast<size_t>(got[k])) continue;  // short: that copy is missing
                for (size_t e = 0; e < k; ++e)
                    if (pos + sl <= static_cast<size_t>(got[e]) && std::memcmp(copy[e] + pos, copy[k] + pos, sl) == 0) {
                        same[j][k] = static_cast<uint8_t>(e);
                        break;
                    }
                ok[j][k] = same[j][k] != k ? ok[j][same[j][k]]
                                           : open_stored_chunk(f, c, last, ByteView(copy[k] + pos, sl), plain.data() + j * kChunkSize);
            }
        });
        for (uint64_t c = c0; c <= c1; ++c) {
            const size_t j = static_cast<size_t>(c - c0), pos = at(c), sl = static_cast<size_t>(stored_chunk_len(size, c));
            st.chunks += m;
            st.bytes += m * sl;
            size_t good = m;  // the first authentic copy
            for (size_t k = 0; k < m && good == m; ++k)
                if (ok[j][k]) good = k;
            for (size_t k = 0; k < m; ++k) {
                if (ok[j][k]) {
                    if (!repair || good == m || same[j][k] == same[j][good]) continue;
                    if (pwrite_full(f.fds[members[k]].get(), copy[good] + pos, sl, static_cast<off_t>(stored_offset(c))) == 0)
                        st.resynced++;
                    continue;
                }
                st.bad++;
                bad.push_back(c);
                if (good == m) {
                    st.unrepairable++;
                } else if (repair &&
                           pwrite_full(f.fds[members[k]].get(), copy[good] + pos, sl, static_cast<off_t>(stored_offset(c))) == 0) {
                    st.repaired++;
                    set_.member(members[k]).repaired++;
                }
            }
        }
    }
}

// An unlink or rename that began after scrub opened the file may have taken
// its name from the other members while the copy was made: the copy would
// then bring back a recording that was removed. Looked at with the namespace
// changes in flight done; such a copy is removed again.
bool Volume::restored_in_place(const Handle& h, size_t target) {
    std::unique_lock ex(place_mu_);
    if (still_there(h, target)) return true;
    const int root = set_.member(target).dirfd.get();
    struct stat ours {};
    std::string rel;
    try {
        rel = located(h.path);
    } catch (const Error&) {
        return false;
    }
    if (::fstat(h.file->fds[target].get(), &ours) == 0 && same_entry(ours, root, rel) && member_path::unlink(root, rel) == 0)
        drop_side(root, rel);
    return false;
}

void Volume::scrub_file(const std::string& path, bool repair, ScrubStats& stats) {
    if (scrub_leftover(path, repair, stats)) return;
    // Settled: an unlink or rename reaches the members one after the other,
    // and a copy missing on some only is looked at again once those in
    // flight are done (retention deletes while scrub runs).
    const auto h = pin(path, true);
    if (!h) return;
    OpenFile& f = *h->file;
    if (repair) {
        // A complete member that lacks the file (its name was altered or
        // removed there) gets a verified copy.
        for (size_t i : set_.healthy_members()) {
            if (f.fds[i]) continue;
            stats.bad++;
            copy_file_to(path, i);
            if (!restored_in_place(*h, i)) {
                stats.bad--;  // removed or moved meanwhile: nothing was missing
                continue;
            }
            stats.repaired++;
            alerts_.raise(alert::TamperRepaired, fmt::format("scrub: {} was missing on {}; restored from an authentic copy", path,
                                                             set_.member(i).path), path);
        }
    }
    std::shared_lock lk(f.mu);
    const std::vector<size_t> members = holders(f, false);
    stats.files++;
    std::vector<uint64_t> bad_chunks;
    scrub_copies(f, members, repair, stats, bad_chunks);
    if (f.hdr.archived) scrub_object(f, path, repair, stats);
    if (!bad_chunks.empty())
        alerts_.raise(alert::TamperDetected,
                      fmt::format("scrub: {}: {} bad chunk copies (first: chunk {}){}", path, bad_chunks.size(), bad_chunks.front(),
                                  repair ? "; repaired where a good copy exists" : "; run scrub --repair"),
                      path);
}

// The object of an archived file: there, and as long as the file. (Its
// chunks authenticate at every read; scrub does not download them all.)
void Volume::scrub_object(OpenFile& f, const std::string& path, bool repair, ScrubStats& stats) {
    const std::string why = archive_ ? archive_->check(f.hdr.id, stored_size(f.hdr.version, f.size)) : "no archive is configured";
    stats.archived++;
    const uint64_t last = last_chunk(f.hdr.version, f.size);
    // A move stopped between the header and the punch (a crash): the
    // chunks are still here too. With the object there, give the space back.
    for (size_t i : repair && why.empty() ? holders(f, true) : std::vector<size_t>{}) {
        struct stat st {};
        if (::fstat(f.fds[i].get(), &st) < 0 || static_cast<uint64_t>(st.st_blocks) * 512 < stored_offset(last) / 2) continue;
        ::fallocate(f.fds[i].get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(kHeaderSize),
                    static_cast<off_t>(stored_offset(last) - kHeaderSize));
        const struct timespec ts[2] = {st.st_atim, st.st_mtim};
        ::futimens(f.fds[i].get(), ts);
        stats.resynced++;
    }
    if (why.empty()) return;
    stats.bad++;
    stats.unrepairable++;
    stats.archive_missing++;
    alerts_.raise(alert::TamperDetected, fmt::format("scrub: {}: archived, but {}; reads of it fail", path, why), path);
}

}  // namespace nvrfs
