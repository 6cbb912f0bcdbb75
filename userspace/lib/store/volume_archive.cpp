// volume_archive.cpp — files in the archive tier: the switch from local to
// archived and back, and reads of archived chunks.
//
// An archived file keeps its name, attributes, header and last chunk on every
// member; the chunks before the last are holes there and live in one object
// (ArchiveStore) holding the file's stored bytes exactly. So stat, the
// namespace ledger's checks (id, size, last tag) and the last chunk never
// leave the recorder, and a chunk from the object authenticates with the
// same key and associated data as on a member: an object altered, swapped
// with another file's or cut is EIO and TamperDetected, never data.
//
// Order of the switch, each step durable before the next, so a crash or an
// outage at any moment leaves a readable copy: (1) upload, (2) read the
// whole object back and authenticate it, (3) header marked archived on every
// member, (4) chunks punched out. Recall runs it backwards: chunks written
// and synced, header cleared, then the object forgotten.
#include "store/volume.hpp"
#include "store/volume_parts.hpp"

#include "base/test_delay.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <linux/falloc.h>
#include <nlohmann/json.hpp>

namespace nvrfs {
using namespace volume_parts;

// t39 deletes a recording between its upload and the switch, and kills
// nvrfsd between the header and the punch.
static const int kUploadedDelayMs = env_ms("NVRFS_ARCHIVE_UPLOADED_DELAY_MS");
static const int kSwitchDelayMs = env_ms("NVRFS_ARCHIVE_SWITCH_DELAY_MS");

namespace {
// Chunks per upload piece and per read-back request (8 MiB and a bit).
constexpr uint64_t kUploadPieceChunks = 128;
}  // namespace

std::optional<FileHeader> Volume::header_at(const std::string& path) {
    std::string rel;
    try {
        rel = located(path);
    } catch (const Error&) {
        return std::nullopt;
    }
    for (size_t i : set_.healthy_members())
        if (auto h = read_header(set_.member(i).dirfd.get(), rel)) return h;
    return std::nullopt;
}

// Every copy f holds on the members an unlink reaches (the writable ones)
// has lost its last name.
bool Volume::unlinked(const OpenFile& f) const {
    bool any = false;
    for (size_t i : holders(f, true)) {
        struct stat st {};
        if (::fstat(f.fds[i].get(), &st) < 0) continue;
        if (st.st_nlink > 0) return false;
        any = true;
    }
    return any;
}

std::vector<struct stat> Volume::file_times(const OpenFile& f) const {
    std::vector<struct stat> out(f.fds.size());
    for (size_t i = 0; i < f.fds.size(); ++i)
        if (f.fds[i]) ::fstat(f.fds[i].get(), &out[i]);
    return out;
}

bool Volume::archived(const std::string& path) {
    const auto h = header_at(path);
    return h && h->archived;
}

void Volume::forget_archived(const std::optional<FileHeader>& h, const std::string& path, const std::string& why) {
    if (h && h->archived && archive_) archive_->forget(h->id, path, why);
}

// Synced on every writable member. The file's times are what a recorder
// and recycling go by: a move keeps them.
void Volume::set_archived(OpenFile& f, const std::string& path, bool archived, const std::vector<struct stat>& times) {
    const char* what = archived ? "archive" : "recall";
    FileHeader h = f.hdr;
    h.archived = archived;
    const auto b = h.encode();
    std::vector<std::pair<size_t, int>> results;
    for (size_t i : holders(f, true)) {
        int r = pwrite_full(f.fds[i].get(), b.data(), b.size(), 0);
        const struct timespec ts[2] = {times[i].st_atim, times[i].st_mtim};
        if (r == 0 && ::futimens(f.fds[i].get(), ts) < 0) r = neg_errno();
        if (r == 0 && ::fdatasync(f.fds[i].get()) < 0) r = neg_errno();
        results.emplace_back(i, r);
    }
    check(set_.combine(what, path, results), what, path);
    f.hdr = h;
}

std::optional<uint64_t> Volume::fetch_archived(const OpenFile& f, const FileHeader& hdr, uint64_t size, uint64_t c0,
                                               uint64_t c1, uint8_t* sealed, uint8_t* out, bool each, bool fresh) {
    const uint64_t last = last_chunk(hdr.version, size);
    const size_t len = static_cast<size_t>(stored_end(size, c1) - stored_offset(c0));
    try {
        archive_->read(hdr.id, stored_size(hdr.version, size), stored_offset(c0), len, sealed, fresh);
    } catch (const Error& e) {
        if (e.code() == EBADMSG) return c0;  // the store answered with less than the file holds
        throw;
    }
    size_t pos = 0;
    for (uint64_t c = c0; c <= c1; ++c) {
        const size_t sl = static_cast<size_t>(stored_chunk_len(size, c));
        if (!open_stored_chunk(f.key, hdr, c, last, ByteView(sealed + pos, sl), out + (each ? (c - c0) * kChunkSize : 0))) return c;
        pos += sl;
    }
    return std::nullopt;
}

void Volume::load_archived(OpenFile& f, const std::string& path, uint64_t c0, uint64_t c1, uint8_t* out) {
    const uint64_t last = last_chunk(f.hdr.version, f.size);
    const uint64_t a1 = std::min(c1, last - 1);  // c0 < last here
    if (!archive_)
        throw Error(EIO, path, fmt::format("{}: archived, but no archive is configured (archive = s3://...)", path));
    Bytes sealed(static_cast<size_t>(stored_offset(a1 + 1) - stored_offset(c0)));
    for (int attempt = 0;; ++attempt) {
        // A second try skips the local cache: a cached block may be what is bad.
        const auto bad = fetch_archived(f, f.hdr, f.size, c0, a1, sealed.data(), out, true, attempt > 0);
        if (!bad) break;
        if (attempt > 0) {
            chunks_bad_++;
            bool first;
            {
                // The kernel retries a failed read page by page: one alert.
                std::lock_guard lk(place_alerted_mu_);
                first = place_alerted_.insert(fmt::format("archive {} {}", hex(f.hdr.id), *bad)).second;
            }
            if (first)
                alerts_.raise(alert::TamperDetected,
                          fmt::format("{}: chunk {} of its archive object {} is not authentic; read refused", path, *bad,
                                      archive_->object_name(f.hdr.id)), path);
            throw Error(EIO, path, fmt::format("{}: archived chunk {} failed authentication", path, *bad));
        }
    }
    chunks_ok_ += a1 - c0 + 1;
    if (c1 == last) load_chunks(f, path, last, last, out + (last - c0) * kChunkSize);
}

void Volume::verify_object(const OpenFile& f, const std::string& path, const FileHeader& hdr, uint64_t size) {
    const uint64_t n = chunk_count(hdr.version, size);
    uint8_t hb[kHeaderSize];
    archive_->read(hdr.id, stored_size(hdr.version, size), 0, kHeaderSize, hb, true);
    const auto h = FileHeader::decode(hb);
    if (!h || !(*h == hdr))
        throw Error(EIO, path, fmt::format("{}: the archive object read back has another header", path));
    Bytes sealed(kUploadPieceChunks * kStoredChunk), plain(kChunkSize);
    for (uint64_t c0 = 0; c0 < n; c0 += kUploadPieceChunks)
        if (const auto bad = fetch_archived(f, hdr, size, c0, std::min(n - 1, c0 + kUploadPieceChunks - 1), sealed.data(), plain.data(), false, true))
            throw Error(EIO, path, fmt::format("{}: chunk {} of the archive object read back does not authenticate", path, *bad));
}

// Step (1) of the switch: the stored bytes of `hdr`'s file at `size`, each
// chunk from a member where it is authentic, as one object. False when a
// writer came in meanwhile (f.changes moved from `changes`).
bool Volume::upload_object(OpenFile& f, const std::string& path, const FileHeader& hdr, uint64_t size, uint64_t changes) {
    const uint64_t n = chunk_count(hdr.version, size);
    auto up = archive_->upload(hdr.id, stored_size(hdr.version, size));
    Bytes piece;
    for (uint64_t c0 = 0; c0 < n; c0 += kUploadPieceChunks) {
        const uint64_t c1 = std::min(n - 1, c0 + kUploadPieceChunks - 1);
        piece.clear();
        if (c0 == 0) {
            const auto hb = hdr.encode();
            piece.assign(hb.begin(), hb.end());
        }
        std::shared_lock lk(f.mu);
        if (f.changes != changes) return false;
        const std::vector<size_t> from = holders(f, false);
        Bytes sealed(kStoredChunk), plain(kChunkSize);
        for (uint64_t c = c0; c <= c1; ++c) {
            if (!find_authentic(f, c, size, from, sealed.data(), plain.data()))
                throw Error(EIO, path, fmt::format("{}: chunk {} is authentic on no member; not archived", path, c));
            piece.insert(piece.end(), sealed.begin(), sealed.begin() + static_cast<long>(stored_chunk_len(size, c)));
        }
        lk.unlock();
        up->part(piece);
    }
    up->finish();
    return true;
}

uint64_t Volume::archive(const std::string& path) {
    if (!archive_) return 0;
    const auto h = pin(path);
    if (!h) return 0;
    OpenFile& f = *h->file;
    uint64_t changes, size;
    FileHeader hdr;
    {
        // What is uploaded, read back and switched: the file as it is now.
        std::shared_lock lk(f.mu);
        changes = f.changes;
        size = f.size;
        hdr = f.hdr;
    }
    if (hdr.kind != Kind::File || hdr.archived || written_elsewhere(*h) || last_chunk(hdr.version, size) == 0) return 0;
    const uint64_t total = stored_size(hdr.version, size);
    // (1) Upload the authentic stored bytes. Readers go on meanwhile; a
    // writer makes the move void (checked below, before anything changes).
    if (!upload_object(f, path, hdr, size, changes)) return 0;
    // (2) Read back, end to end, as uploaded. An object that fails is
    // deleted: the store gave back other bytes (a writer meanwhile does not
    // fail it; step (3) finds the writer).
    try {
        verify_object(f, path, hdr, size);
    } catch (const Error&) {
        archive_->forget(hdr.id, path, "did not read back as uploaded");
        if (f.changes != changes) return 0;
        throw;
    }
    test_delay(kUploadedDelayMs);
    // (3) and (4), with no writer in between, and no unlink: one under way
    // read the header before it said "archived" and would leave the object
    // behind, a recording deleted here and kept in the archive. Once those
    // are done, a copy no name leads to any more is such a file; an unlink
    // after the switch reads that the file is archived and forgets it.
    {
        std::unique_lock place(place_mu_);
        std::unique_lock lk(f.mu);
        const bool changed = f.changes != changes || written_elsewhere(*h);
        if (changed || unlinked(f)) {
            lk.unlock();
            place.unlock();
            archive_->forget(hdr.id, path, changed ? "changed while it was uploaded" : "unlinked while it was uploaded");
            return 0;
        }
        const auto times = file_times(f);
        set_archived(f, path, true, times);
        place.unlock();
        const uint64_t last = last_chunk(f.hdr.version, size);
        test_delay(kSwitchDelayMs);
        for (size_t i : holders(f, true)) {
            // A member file system that cannot punch keeps the bytes: reads
            // still go to the archive, only the space is not given back.
            ::fallocate(f.fds[i].get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(kHeaderSize),
                        static_cast<off_t>(stored_offset(last) - kHeaderSize));
            const struct timespec ts[2] = {times[i].st_atim, times[i].st_mtim};
            ::futimens(f.fds[i].get(), ts);
            ::fsync(f.fds[i].get());
        }
    }
    audit("archive", Caller::daemon(), path, 0, [&](nlohmann::json& r) {
        r["id"] = hex(hdr.id);
        r["object"] = archive_->object_name(hdr.id);
        r["bytes"] = total;
    });
    return total;
}

void Volume::recall_locked(OpenFile& f, const std::string& path, const Caller& who) {
    if (!f.hdr.archived) return;
    try {
        const uint64_t size = f.size, last = last_chunk(f.hdr.version, size), total = stored_size(f.hdr.version, size);
        const std::vector<size_t> targets = holders(f, true);
        const auto times = file_times(f);
        if (!make_room(stored_offset(last) - kHeaderSize, targets, false))
            throw_errno(ENOSPC, path, "no room to bring the archived file back");
        Bytes sealed(kUploadPieceChunks * kStoredChunk), plain(kChunkSize);
        for (uint64_t c0 = 0; c0 < last; c0 += kUploadPieceChunks) {
            const uint64_t c1 = std::min(last - 1, c0 + kUploadPieceChunks - 1);
            const size_t len = static_cast<size_t>(stored_offset(c1 + 1) - stored_offset(c0));
            if (!archive_) throw Error(EIO, path, path + ": archived, but no archive is configured");
            if (const auto bad = fetch_archived(f, f.hdr, size, c0, c1, sealed.data(), plain.data(), false, true))
                throw Error(EIO, path, fmt::format("{}: archived chunk {} failed authentication; not recalled", path, *bad));
            std::vector<std::pair<size_t, int>> results;
            for (size_t i : targets) {
                int r = ::fallocate(f.fds[i].get(), 0, static_cast<off_t>(stored_offset(c0)), static_cast<off_t>(len)) < 0 &&
                                errno != EOPNOTSUPP ? neg_errno() : 0;
                if (r == 0) r = pwrite_full(f.fds[i].get(), sealed.data(), len, static_cast<off_t>(stored_offset(c0)));
                results.emplace_back(i, r);
            }
            check(set_.combine("recall", path, results), "recall", path);
        }
        for (size_t i : targets) ::fsync(f.fds[i].get());
        set_archived(f, path, false, times);
        f.sparse = false;
        audit("recall", who, path, 0, [&](nlohmann::json& r) {
            r["id"] = hex(f.hdr.id);
            r["bytes"] = total;
        });
    } catch (const Error& e) {
        audit("recall", who, path, e.code());
        throw;
    }
    archive_->forget(f.hdr.id, path, "recalled");
}

bool Volume::recall(const std::string& path, const Caller& who) {
    const auto h = pin(path);
    if (!h) throw_errno(ENOENT, path, "recall");
    std::unique_lock lk(h->file->mu);
    if (!h->file->hdr.archived) return false;
    recall_locked(*h->file, path, who);
    return true;
}

}  // namespace nvrfs
