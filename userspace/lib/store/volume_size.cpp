// volume_size.cpp — a file's size: growing (zero-form chunks), truncate, fallocate.
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

void Volume::extend_locked(OpenFile& f, const std::string& path, uint64_t new_size) {
    // Refuse what no member file system can hold (ext4's 16 TiB).
    if (new_size > kMaxFileSize) throw_errno(EFBIG, path, "extend");
    recall_locked(f, path, Caller::daemon());
    // The last chunk is filled with sealed zeros up to its end; every whole
    // chunk past it is stored in the zero form (a hole on the member). (A
    // version 2 file that ends on a boundary ends in an empty chunk: nothing
    // to fill; the zero chunks start there.)
    const uint64_t boundary = f.hdr.version == kFormatV1 ? chunk_count(kFormatV1, f.size) * kChunkSize
                                                         : (f.size + kChunkSize - 1) / kChunkSize * kChunkSize;
    if (f.size < boundary) write_locked(f, path, nullptr, f.size, std::min(new_size, boundary) - f.size);
    if (f.size < new_size) store_zero_chunks(f, path, new_size);
}


void Volume::store_zero_chunks(OpenFile& f, const std::string& path, uint64_t new_size) {
    // f.size ends on a chunk boundary (extend_locked filled the last chunk);
    // a version 2 file's empty last chunk, at index a, is overwritten below.
    const uint64_t a = f.size / kChunkSize, b = last_chunk(f.hdr.version, new_size);
    f.changes++;
    // Each zero chunk takes a block or two of the member (its two ends), not
    // 64 KiB. Recycling is not asked: a `truncate -s` must never delete recordings.
    if (!make_room((b - a + 1) * 8192, holders(f, true), false)) throw_errno(ENOSPC, path, "extend");
    // Space reserved ahead of the last write would end up inside the file,
    // held by zeros that need none: given back first.
    release_reserve(f);
    std::vector<ZeroChunkEnds> ends(static_cast<size_t>(b - a + 1));
    set_.parallel_for(ends.size(), [&](size_t k) {
        ends[k] = seal_zero_chunk(f.key, f.hdr, a + k, a + k == b, static_cast<size_t>(chunk_plain_len(new_size, a + k)));
    });
    // The new last chunk first (it sets the stored length), then downwards:
    // a crash part way leaves a file whose end authenticates, with only
    // not-yet-written zeros unreadable, never data written before.
    // Chunk a of a version 2 file held the empty last chunk: its old tag lies
    // in the new chunk's body and is cleared (a zero chunk's body must be zeros).
    const std::vector<size_t> targets = holders(f, true);
    std::array<std::atomic<int>, kMaxMembers> err{};
    set_.parallel_for(targets.size(), [&](size_t k) {
        const int fd = f.fds[targets[k]].get();
        for (uint64_t i = b + 1; i-- > a;) {
            const auto& e = ends[i - a];
            const bool clear = i == a && f.hdr.version != kFormatV1;
            if (int r = write_zero_chunk(fd, i, static_cast<size_t>(chunk_plain_len(new_size, i)), e.nonce.data(), e.tag.data(), clear)) {
                err[targets[k]] = r;
                return;
            }
        }
    });
    std::vector<std::pair<size_t, int>> results;
    for (size_t t : targets) results.emplace_back(t, err[t].load());
    check(set_.combine("write", path, results), "write", path);
    // Version 1: the old last chunk stops being last.
    if (f.hdr.version == kFormatV1) {
        const uint64_t old_last = a - 1;
        Bytes old_tail(kChunkSize);
        chunk_plain(f, path, old_last, old_tail.data());
        seal_and_store(f, path, old_last, old_last, new_size, {old_tail.data()}, false);
    }
    f.size = new_size;
    f.sparse = true;
    f.tail.valid = false;
}


void Volume::truncate_locked(OpenFile& f, const std::string& path, uint64_t new_size) {
    const uint64_t size = f.size;
    if (new_size == size) return;
    if (new_size > size) return extend_locked(f, path, new_size);
    f.changes++;
    f.reserved_to = 0;  // a shrinking truncate frees what lay past the new end
    std::vector<std::pair<size_t, int>> results;
    if (new_size == 0) {
        // A new generation: no chunk from before can be replayed into the
        // file, and none is needed from the archive.
        // A version 1 file starts again in the current version: no chunk of the old
        // generation is ever read again, so its layout can change too.
        const bool was_archived = f.hdr.archived;
        f.hdr.generation++;
        f.hdr.archived = false;
        f.hdr.version = new_file_version_;
        const Bytes init = empty_file_image(f.hdr, f.key);
        for (size_t i : holders(f, true)) {
            int r = ::ftruncate(f.fds[i].get(), static_cast<off_t>(init.size())) < 0 ? neg_errno() : 0;
            if (r == 0) r = pwrite_full(f.fds[i].get(), init.data(), init.size(), 0);
            results.emplace_back(i, r);
        }
        if (const int r = set_.combine("truncate", path, results); r < 0) {
            f.hdr.archived = was_archived;  // the object is still what holds the chunks
            check(r, "truncate", path);
        }
        if (was_archived && archive_) archive_->forget(f.hdr.id, path, "truncated to zero");
        f.size = 0;
        f.tail.valid = true;
        f.tail.index = 0;
        f.tail.plain.clear();
        return;
    }
    recall_locked(f, path, Caller::daemon());
    const uint64_t nl = last_chunk(f.hdr.version, new_size);
    Bytes p(kChunkSize);
    const size_t pl = chunk_plain_len(new_size, nl);
    if (pl) chunk_plain(f, path, nl, p.data());
    Bytes s(pl + kChunkOverhead);
    seal_chunk(f.key, f.hdr, nl, true, ByteView(p.data(), pl), s.data());
    for (size_t i : holders(f, true)) {
        int r = ::ftruncate(f.fds[i].get(), static_cast<off_t>(stored_size(f.hdr.version, new_size))) < 0 ? neg_errno() : 0;
        if (r == 0) r = pwrite_full(f.fds[i].get(), s.data(), s.size(), static_cast<off_t>(stored_offset(nl)));
        results.emplace_back(i, r);
    }
    check(set_.combine("truncate", path, results), "truncate", path);
    f.size = new_size;
    f.tail.plain.assign(p.begin(), p.begin() + static_cast<long>(pl));
    f.tail.index = nl;
    f.tail.valid = true;
}


void Volume::fallocate(Handle& h, int mode, uint64_t off, uint64_t len, const Caller& who) {
    // Mode 0 and FALLOC_FL_KEEP_SIZE: space is reserved on every member for
    // the stored range; mode 0 also grows the file (with zero-form chunks).
    // Punching and collapsing would rewrite recordings in place: not offered.
    const std::string path = name_now(h);  // renamed while open: the record names it as it is now
    if (mode & ~FALLOC_FL_KEEP_SIZE) throw_errno(EOPNOTSUPP, path, "fallocate");
    if (len == 0) throw_errno(EINVAL, path, "fallocate");
    if (!h.writable) throw_errno(EBADF, path, "fallocate");
    const uint64_t end = off + len;
    if (end < off || end > kMaxFileSize) throw_errno(EFBIG, path, "fallocate");
    OpenFile& f = *h.file;
    std::shared_lock place(place_mu_);
    std::unique_lock lk(f.mu);
    const uint64_t old = f.size;
    // The ledger's record of the grown file (grown part way too: how far).
    auto record_grown = [&](int err) {
        lk.unlock();
        record_facts("truncate", who, h, path, err, [&](nlohmann::json& r, const Facts& now) {
            r["bytes"] = now.size;
            r["from"] = old;
            r["by"] = "fallocate";
        });
    };
    try {
        if (!(mode & FALLOC_FL_KEEP_SIZE) && end > f.size) extend_locked(f, path, end);
        const uint64_t c0 = off / kChunkSize, c1 = (end - 1) / kChunkSize;
        const uint64_t begin = stored_offset(c0), stop = stored_offset(c1) + kStoredChunk;
        const auto members = holders(f, true);
        if (!make_room(stop - begin, members, false)) throw_errno(ENOSPC, path, "fallocate");
        std::vector<std::pair<size_t, int>> results;
        for (size_t i : members) {
            int r = ::fallocate(f.fds[i].get(), FALLOC_FL_KEEP_SIZE, static_cast<off_t>(begin), static_cast<off_t>(stop - begin));
            results.emplace_back(i, r < 0 && errno != EOPNOTSUPP ? neg_errno() : 0);
        }
        check(set_.combine("fallocate", path, results), "fallocate", path);
    } catch (const Error& e) {
        if (f.size != old) record_grown(e.code());
        throw;
    }
    if (f.size != old) record_grown(0);
}

void Volume::truncate(const std::string& path, uint64_t size, Handle* h, const Caller& who) {
    std::shared_lock place(place_mu_);
    std::shared_ptr<Handle> own;
    uint64_t old = 0;
    bool part = false;  // failed part way: the record says where it stopped
    try {
        if (!h) {
            own = pin(path);
            if (!own) throw_errno(ENOENT, path, "truncate");
            h = own.get();
        }
        {
            std::unique_lock lk(h->file->mu);
            old = h->file->size;
            try {
                truncate_locked(*h->file, path, size);
            } catch (const Error&) {
                part = h->file->size != old;
                throw;
            }
        }
        record_facts("truncate", who, *h, path, 0, [&](nlohmann::json& r, const Facts&) {
            r["bytes"] = size;
            r["from"] = old;
        });
    } catch (const Error& e) {
        if (!part) {
            audit("truncate", who, path, e.code());
            throw;
        }
        record_facts("truncate", who, *h, path, e.code(), [&](nlohmann::json& r, const Facts&) { r["from"] = old; });
        throw;
    }
}

}  // namespace nvrfs
