// archive_cache.cpp — reads of archived files: 4 MiB blocks fetched by HTTP
// Range into a local cache (stored bytes, still encrypted and authenticated
// at every read), least recently used out, the next block fetched ahead.
#include "admin/archive.hpp"

#include "base/error.hpp"
#include "base/io.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace nvrfs {
namespace {
constexpr uint64_t kBlock = 4 << 20;
constexpr uint64_t kAhead = 3;  // blocks fetched ahead, one per prefetch thread
}  // namespace

std::string ArchiveTier::cache_file(const FileId& id, uint64_t block) const { return fmt::format("{}.{}", hex(id), block); }

bool ArchiveTier::cached(const FileId& id, uint64_t block, uint64_t off, size_t len, uint8_t* out) {
    const std::string name = cache_file(id, block);
    {
        std::lock_guard lk(cache_mu_);
        const auto it = cache_.find(name);
        if (it == cache_.end()) return false;
        lru_.splice(lru_.begin(), lru_, it->second.second);
    }
    const int fd = ::openat(cache_fd_.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return false;
    UniqueFd own(fd);
    return pread_full(fd, out, len, static_cast<off_t>(off)) == static_cast<ssize_t>(len);
}

Bytes ArchiveTier::fetch_block(const FileId& id, uint64_t total, uint64_t block) {
    const std::string key = object_name(id), name = cache_file(id, block);
    const uint64_t off = block * kBlock, len = std::min(kBlock, total - off);
    {
        // A block being fetched (read-ahead) is waited for, not fetched twice.
        std::unique_lock lk(cache_mu_);
        cache_cv_.wait(lk, [&] { return !inflight_.count(name); });
        if (cache_.count(name)) {
            lk.unlock();
            Bytes b(len);
            if (cached(id, block, 0, len, b.data())) return b;
            lk.lock();
        }
        inflight_.insert(name);
    }
    struct Done {
        ArchiveTier& t;
        const std::string& n;
        ~Done() {
            {
                std::lock_guard lk(t.cache_mu_);
                t.inflight_.erase(n);
            }
            t.cache_cv_.notify_all();
        }
    } done{*this, name};
    Bytes b;
    s3("GET " + key, [&] { b = client_->get(key, off, len); });
    if (s_.cache == 0) return b;
    // No fsync: what the cache holds is authenticated at every read, and a
    // block that does not authenticate is fetched again.
    const std::string tmp = name + ".tmp" + std::to_string(::gettid());
    UniqueFd fd(::openat(cache_fd_.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd || write_full(fd.get(), b.data(), b.size()) < 0 || ::renameat(cache_fd_.get(), tmp.c_str(), cache_fd_.get(), name.c_str()) < 0) {
        ::unlinkat(cache_fd_.get(), tmp.c_str(), 0);
        return b;  // no room for the cache: served all the same
    }
    std::lock_guard lk(cache_mu_);
    unindex_locked(name);  // an entry for the block's earlier file, which the rename replaced
    lru_.push_front(name);
    cache_[name] = {b.size(), lru_.begin()};
    cache_bytes_ += b.size();
    while (cache_bytes_ > s_.cache && lru_.size() > 1) uncache_locked(lru_.back());
    return b;
}

bool ArchiveTier::unindex_locked(const std::string& name) {
    const auto it = cache_.find(name);
    if (it == cache_.end()) return false;
    cache_bytes_ -= it->second.first;
    lru_.erase(it->second.second);
    cache_.erase(it);
    return true;
}

void ArchiveTier::uncache_locked(std::string name) {
    if (unindex_locked(name)) ::unlinkat(cache_fd_.get(), name.c_str(), 0);
}

void ArchiveTier::uncache(const std::string& hid) {
    const std::string prefix = hid + ".";
    std::lock_guard lk(cache_mu_);
    for (auto it = cache_.lower_bound(prefix); it != cache_.end() && it->first.starts_with(prefix);)
        uncache_locked((it++)->first);
}

void ArchiveTier::uncache(const FileId& id, uint64_t off, uint64_t len) {
    if (len == 0) return;
    std::lock_guard lk(cache_mu_);
    for (uint64_t b = off / kBlock; b <= (off + len - 1) / kBlock; ++b) uncache_locked(cache_file(id, b));
}

void ArchiveTier::read(const FileId& id, uint64_t total, uint64_t off, size_t len, uint8_t* out, bool fresh) {
    const std::string key = object_name(id);
    if (off + len > total) throw Error(EIO, key, fmt::format("read past the end of archive object {}", key));
    if (fresh) {
        // The cache is not to be trusted here (see ArchiveStore::read): its
        // blocks go, and the next read caches them anew from the store.
        uncache(id, off, len);
        Bytes b;
        s3("GET " + key, [&] { b = client_->get(key, off, len); });
        std::memcpy(out, b.data(), len);
        return;
    }
    uint64_t pos = off;
    while (pos < off + len) {
        const uint64_t block = pos / kBlock, in = pos - block * kBlock;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(off + len - pos, kBlock - in));
        if (!cached(id, block, in, n, out + (pos - off))) {
            const Bytes b = fetch_block(id, total, block);
            if (in + n > b.size()) throw Error(EIO, key, fmt::format("archive object {} is shorter than its file", key));
            std::memcpy(out + (pos - off), b.data() + in, n);
        }
        pos += n;
    }
    // Sequential readers find the next blocks waiting.
    const uint64_t next = (off + len - 1) / kBlock + 1;
    for (uint64_t b = next; b < next + kAhead && b * kBlock < total; ++b) prefetch(id, total, b);
}

void ArchiveTier::prefetch(const FileId& id, uint64_t total, uint64_t block) {
    if (s_.cache == 0) return;
    std::lock_guard lk(cache_mu_);
    if (cache_.count(cache_file(id, block))) return;
    for (const auto& [i, t, b] : prefetch_q_)
        if (i == id && b == block) return;
    if (prefetch_q_.size() >= 16) prefetch_q_.pop_front();
    prefetch_q_.emplace_back(id, total, block);
    prefetch_cv_.notify_one();
}

void ArchiveTier::prefetch_loop() {
    for (;;) {
        std::tuple<FileId, uint64_t, uint64_t> job;
        {
            std::unique_lock lk(cache_mu_);
            prefetch_cv_.wait(lk, [&] {
                std::lock_guard ml(mu_);
                return stop_ || !prefetch_q_.empty();
            });
            std::lock_guard ml(mu_);
            if (stop_) return;
            job = prefetch_q_.front();
            prefetch_q_.pop_front();
        }
        try {
            fetch_block(std::get<0>(job), std::get<1>(job), std::get<2>(job));
        } catch (const Error&) {
            // the reader will fetch it itself, and say why if it fails
        }
    }
}

}  // namespace nvrfs
