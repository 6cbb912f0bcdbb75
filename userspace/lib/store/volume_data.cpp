// volume_data.cpp — the data path: reading with verify/repair, sealing and storing writes, space reservation.
#include "store/volume.hpp"
#include "store/volume_parts.hpp"

#include "base/plain_path.hpp"
#include "store/tree.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/falloc.h>

namespace nvrfs {
using namespace volume_parts;

// ---- data ----------------------------------------------------------------

void Volume::load_chunks(OpenFile& f, const std::string& path, uint64_t c0, uint64_t c1, uint8_t* out) {
    const uint64_t size = f.size, last = last_chunk(f.hdr.version, size);
    // A version 2 file that ends on a chunk boundary ends in an empty chunk,
    // which no byte of a read falls in. It is what proves that the file was
    // not cut there, so a read of the chunk before it checks it too (28
    // bytes more in the same read; it decrypts to nothing).
    if (c1 + 1 == last && chunk_plain_len(size, last) == 0) c1 = last;
    if (f.hdr.archived && c0 < last) return load_archived(f, path, c0, c1, out);
    const uint64_t stored_len = stored_end(size, c1) - stored_offset(c0);

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

namespace {

// The kernel's read-ahead has several requests of a handle in flight, served
// a little out of order: what lies kDropKeep behind the furthest read has
// been served; a read further than kRunSlack from it starts a new run.
constexpr uint64_t kDropKeep = 16 << 20, kRunSlack = 16 << 20, kDropStep = 4 << 20;

}  // namespace

// Only what a handle read in order lets go, from where its run of reads in
// order began; a handle seeking about keeps the pages.
void Volume::drop_read_behind(Handle& h, uint64_t begin, uint64_t end) {
    uint64_t top = h.read_next.load();
    if (begin > top + kRunSlack || begin + kRunSlack < top) {
        h.read_next.store(end);
        h.read_dropped.store(begin);
        return;
    }
    while (end > top && !h.read_next.compare_exchange_weak(top, end)) {
    }
    top = std::max(top, end);
    uint64_t from = h.read_dropped.load();
    if (top < from + kDropKeep + kDropStep) return;
    const uint64_t to = top - kDropKeep;
    if (!h.read_dropped.compare_exchange_strong(from, to)) return;
    for (size_t i : holders(*h.file, false)) drop_pages(h.file->fds[i].get(), from, to);
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
    } else {
        uint8_t* plain = scratch(kReadPlain, (c1 - c0 + 1) * kChunkSize);
        load_chunks(f, h.path, c0, c1, plain);
        std::memcpy(buf, plain + (off - c0 * kChunkSize), static_cast<size_t>(end - off));
    }
    drop_read_behind(h, stored_offset(c0), stored_end(fsize, c1));
    return static_cast<size_t>(end - off);
}

// Chunks per piece of a request that one thread seals.
constexpr uint64_t kSealPieceChunks = 4;

void Volume::seal_and_store(OpenFile& f, const std::string& path, uint64_t c0, uint64_t c1, uint64_t new_size,
                            const std::vector<const uint8_t*>& plain, bool grows) {
    const uint64_t new_last = last_chunk(f.hdr.version, new_size);
    const uint64_t begin = stored_offset(c0), end = stored_end(new_size, c1);
    uint8_t* sealed = scratch(kWriteSealed, static_cast<size_t>(end - begin));
    // Per member: 0, or the first error any piece met there.
    std::array<std::atomic<int>, kMaxMembers> err{};
    const std::vector<size_t> targets = holders(f, true);
    f.changes++;
    if (grows && end > f.reserved_to) reserve(f, targets, begin, end, err);
    else if (f.sparse) allocate_holes(f, targets, begin, end);
    const uint64_t pieces = (c1 - c0) / kSealPieceChunks + 1;
    set_.parallel_for(static_cast<size_t>(pieces), [&](size_t k) {
        const uint64_t a = c0 + k * kSealPieceChunks, b = std::min(c1, a + kSealPieceChunks - 1);
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
// The reservation ends on a multiple of the step, 4-8 MiB ahead: ext4 fits
// an allocation to an aligned window of the file, and unaligned steps left
// a gap after every 4-8 MiB of a recording, its pieces out of order on the
// disk (256 MiB: 41 extents; aligned: 4; eight 64 MiB files written at once:
// 17 each, aligned: 10). Every sequential read, scrub and rebuild pays for
// those pieces: a seek each on a disk (t40).
constexpr uint64_t kReserveStep = 4 << 20;

// Ahead only while every member has room for every writer's reservation and
// the metadata reserve besides: near full, what one file holds ahead is what
// another needs for its data, and a set must fill with recordings, not with
// reservations (256 streams held 1.2 GiB of a 3.9 GiB member ahead, and their
// new files got ENOSPC).
bool Volume::room_ahead(const std::vector<size_t>& members) {
    const uint64_t need = (open_writers() + 1) * 2 * kReserveStep + kMetaReserve;
    return std::all_of(members.begin(), members.end(), [&](size_t i) { return member_avail(i) >= need; });
}

// A member whose file system cannot say is not the one that stops a write:
// its own write answers for it.
uint64_t Volume::member_avail(size_t i) {
    struct statvfs s {};
    if (::fstatvfs(set_.member(i).dirfd.get(), &s) < 0) return UINT64_MAX;
    return static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
}

void Volume::reserve(OpenFile& f, const std::vector<size_t>& members, uint64_t begin, uint64_t end,
                     std::array<std::atomic<int>, kMaxMembers>& err) {
    // Room first, on every member, before any byte is written: a full set
    // answers ENOSPC with nothing written anywhere (no torn chunk, no copy
    // longer than the other), keeps kMetaReserve for the audit log and
    // metadata, and gets the recycler's help before it says so.
    uint64_t upto = (end + 2 * kReserveStep - 1) / kReserveStep * kReserveStep;
    if (!room_ahead(members)) upto = end;
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
        for (size_t i : members)
            if (member_avail(i) < bytes + kMetaReserve && !set_.full_alone(i)) return false;
        return true;
    };
    if (fits()) {
        full_alerted_.store(false, std::memory_order_relaxed);
        return true;
    }
    // Recycling frees the oldest recordings (space_monitor.hpp); it runs on
    // this thread, so the writer waits for it rather than seeing ENOSPC.
    // Writers queued behind a recycler take what it freed before it looks
    // again, so a count of tries could run out while recycling still frees
    // space: ask again as long as it does, for up to kRecycleWait.
    if (!recycle) return false;
    const auto until = std::chrono::steady_clock::now() + kRecycleWait;
    while (on_full_ && std::chrono::steady_clock::now() < until) {
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
    const uint64_t used = stored_size(f.hdr.version, f.size);
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
// bounds what a power cut can take. It does not wait for the write-out to
// end, but starting it can wait when the block layer throttles writers
// (wbt_wait, seen with two `dd` writers at once): only this file's writer,
// only once per step.
constexpr uint64_t kWriteoutStep = 8 << 20;

// What lies a step behind the write-out started last has had a step's time
// to reach the disk, so its pages are let go (the kernel keeps those still
// dirty or under write-out).
void Volume::start_writeout(OpenFile& f, const std::vector<size_t>& members, uint64_t upto) {
    if (upto < f.writeout_from + kWriteoutStep) {
        if (upto < f.writeout_from) f.writeout_from = f.dropped_to = 0;  // rewritten from the start (truncate)
        return;
    }
    const uint64_t drop_to = f.writeout_from > kWriteoutStep ? f.writeout_from - kWriteoutStep : 0;
    for (size_t i : members) {
        ::sync_file_range(f.fds[i].get(), static_cast<off64_t>(f.writeout_from),
                          static_cast<off64_t>(upto - f.writeout_from), SYNC_FILE_RANGE_WRITE);
        if (drop_to > f.dropped_to) drop_pages(f.fds[i].get(), f.dropped_to, drop_to);
    }
    f.dropped_to = std::max(f.dropped_to, drop_to);
    f.writeout_from = upto;
}

// At the close of a write session: pages still under write-out when the
// writer let them go were kept, and stay until memory runs short (t20 met
// 87 and 213 MiB of a 512 MiB recording left so, on a busy disk). That
// write-out was started a step or more ago; once it is done they go.
void Volume::drop_written_out(OpenFile& f) {
    if (f.dropped_to == 0) return;
    for (size_t i : holders(f, true)) {
        ::sync_file_range(f.fds[i].get(), 0, static_cast<off64_t>(f.dropped_to), SYNC_FILE_RANGE_WAIT_BEFORE);
        drop_pages(f.fds[i].get(), 0, f.dropped_to);
    }
}

void Volume::write_locked(OpenFile& f, const std::string& path, const uint8_t* data, uint64_t off, uint64_t len) {
    if (len == 0) return;
    const uint64_t size = f.size, end = off + len, new_size = std::max(size, end);
    const uint64_t old_last = last_chunk(f.hdr.version, size), new_last = last_chunk(f.hdr.version, new_size);
    // Version 2: a write that grows the file to a chunk boundary also stores
    // the empty chunk that now ends it.
    const uint64_t c0 = off / kChunkSize, c1 = std::max((end - 1) / kChunkSize, new_size > size ? new_last : 0);
    const size_t nchunks = static_cast<size_t>(c1 - c0 + 1);

    // Version 1: the old last chunk stays but stops being last: it is sealed
    // again with last=0 after the new chunks are down. Read it while `size`
    // still says so. (Version 2 never seals a full chunk as last.)
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


size_t Volume::write(Handle& h, const uint8_t* buf, size_t size, uint64_t off) {
    OpenFile& f = *h.file;
    try {
        std::unique_lock lk(f.mu);
        recall_locked(f, h.path, h.who);  // an archived file comes back before it changes
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

}  // namespace nvrfs
