#include "backup_archive.hpp"

#include "error.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace nvrfs {
namespace {

constexpr uint8_t kMagic[8] = {'N', 'V', 'R', 'B', 'A', 'K', '0', '1'};
constexpr size_t kHeader = 64, kRecord = 1 << 20;

void put32(uint8_t* p, uint32_t v) { for (int i = 3; i >= 0; --i, v >>= 8) p[i] = uint8_t(v); }
uint32_t get32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

struct Keys {
    SecretKey header, data;
};
Keys derive(std::string_view pass, ByteView salt, uint32_t iters) {
    const SecretKey kek = pbkdf2_sha256(pass, salt, iters);
    return {hkdf_sha256(kek, {}, "nvrfs backup header v1"), hkdf_sha256(kek, {}, "nvrfs backup data v1")};
}

std::array<uint8_t, 25> record_ad(const std::array<uint8_t, 16>& id, uint64_t index, bool final) {
    std::array<uint8_t, 25> ad{};
    std::memcpy(ad.data(), id.data(), 16);
    for (int i = 0; i < 8; ++i) ad[16 + i] = uint8_t(index >> (56 - 8 * i));
    ad[24] = final ? 1 : 0;
    return ad;
}

// Archive names are relative paths without "." or ".." parts.
bool safe_name(const std::string& n) {
    if (n.empty() || n[0] == '/' || n.find('\0') != std::string::npos) return false;
    size_t pos = 0;
    while (pos <= n.size()) {
        size_t e = n.find('/', pos);
        if (e == std::string::npos) e = n.size();
        const std::string part = n.substr(pos, e - pos);
        if (part.empty() || part == "." || part == "..") return false;
        pos = e + 1;
    }
    return true;
}

void mkdirs(const std::string& dir) {
    for (size_t p = 1; p <= dir.size(); ++p)
        if (p == dir.size() || dir[p] == '/') ::mkdir(dir.substr(0, p).c_str(), 0755);
}

}  // namespace

BackupWriter::BackupWriter(std::string path, std::string_view passphrase, uint32_t iterations, nlohmann::json meta)
    : path_(std::move(path)), meta_(std::move(meta)) {
    if (iterations < kBackupMinIterations)
        throw Error(EINVAL, path_, fmt::format("PBKDF2 iterations must be at least {}", kBackupMinIterations));
    if (passphrase.size() < 8) throw Error(EINVAL, path_, "the backup passphrase must be at least 8 characters");
    if (::access(path_.c_str(), F_OK) == 0) throw Error(EEXIST, path_, fmt::format("{} already exists", path_));
    fd_.reset(::open((path_ + ".partial").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd_) throw_errno(errno, path_ + ".partial", "cannot create backup");
    uint8_t h[kHeader] = {};
    std::memcpy(h, kMagic, 8);
    put32(h + 8, iterations);
    random_bytes({h + 12, 16});
    random_bytes(id_);
    std::memcpy(h + 28, id_.data(), 16);
    put32(h + 44, kRecord);
    const Keys k = derive(passphrase, ByteView(h + 12, 16), iterations);
    const auto tag = hmac_sha256(k.header, ByteView(h, 48));
    std::memcpy(h + 48, tag.data(), 16);
    data_key_ = k.data;
    if (int r = write_full(fd_.get(), h, kHeader); r < 0) throw_errno(-r, path_ + ".partial", "cannot write backup");
    written_ = kHeader;
    buf_.reserve(kRecord);
}

BackupWriter::~BackupWriter() {
    if (!done_ && fd_) abandon();
}

void BackupWriter::flush_record(bool final) {
    const auto ad = record_ad(id_, index_, final);
    Bytes rec(4 + kGcmNonce + buf_.size() + kGcmTag);
    put32(rec.data(), static_cast<uint32_t>(rec.size() - 4));
    random_bytes({rec.data() + 4, kGcmNonce});
    gcm_seal(data_key_, rec.data() + 4, ad, buf_, rec.data() + 4 + kGcmNonce, rec.data() + 4 + kGcmNonce + buf_.size());
    if (int r = write_full(fd_.get(), rec.data(), rec.size()); r < 0) {
        throw Error(-r, path_, fmt::format("cannot write backup {} after {} bytes: {}", path_, written_, std::strerror(-r)));
    }
    written_ += rec.size();
    ++index_;
    buf_.clear();
}

void BackupWriter::put(const void* data, size_t len) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (len > 0) {
        const size_t n = std::min(len, kRecord - buf_.size());
        buf_.insert(buf_.end(), p, p + n);
        p += n;
        len -= n;
        if (buf_.size() == kRecord) flush_record(false);
    }
}

void BackupWriter::add_file(const std::string& src, const std::string& name, const Progress& progress) {
    if (!safe_name(name)) throw Error(EINVAL, name, "unsafe name in backup: " + name);
    UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) throw_errno(errno, src, "cannot read recording");
    struct stat st {};
    ::fstat(in.get(), &st);
    BackupEntry e{name, static_cast<uint64_t>(st.st_size), st.st_mtime, st.st_mode & 0777, ""};
    const std::string head = nlohmann::json{{"path", name}, {"size", e.size}, {"mtime", e.mtime}, {"mode", e.mode}}.dump();
    uint8_t tl[5] = {'F'};
    put32(tl + 1, static_cast<uint32_t>(head.size()));
    put(tl, 5);
    put(head.data(), head.size());
    Sha256 h;
    Bytes chunk(kRecord);
    uint64_t left = e.size, off = 0;
    while (left > 0) {
        ssize_t n = pread_full(in.get(), chunk.data(), static_cast<size_t>(std::min<uint64_t>(left, chunk.size())), static_cast<off_t>(off));
        if (n < 0) throw_errno(static_cast<int>(-n), src, "cannot read recording");
        if (n == 0) throw Error(EIO, src, fmt::format("{} shrank while being backed up", src));
        h.update(ByteView(chunk.data(), static_cast<size_t>(n)));
        put(chunk.data(), static_cast<size_t>(n));
        left -= static_cast<uint64_t>(n);
        off += static_cast<uint64_t>(n);
        if (progress) progress(static_cast<uint64_t>(n));
    }
    e.sha256 = hex(h.final());
    entries_.push_back(e);
}

const std::vector<BackupEntry>& BackupWriter::finish() {
    nlohmann::json m = meta_;
    m["files"] = nlohmann::json::array();
    for (const auto& e : entries_) m["files"].push_back({{"path", e.path}, {"size", e.size}, {"sha256", e.sha256}});
    m["complete"] = true;
    const std::string s = m.dump();
    uint8_t tl[5] = {'M'};
    put32(tl + 1, static_cast<uint32_t>(s.size()));
    put(tl, 5);
    put(s.data(), s.size());
    flush_record(true);
    if (::fsync(fd_.get()) < 0) throw_errno(errno, path_, "cannot fsync backup");
    fd_.reset();
    if (::rename((path_ + ".partial").c_str(), path_.c_str()) < 0) throw_errno(errno, path_, "cannot finish backup");
    done_ = true;
    return entries_;
}

std::string BackupWriter::abandon() {
    fd_.reset();
    done_ = true;
    const std::string inc = path_ + ".incomplete";
    ::rename((path_ + ".partial").c_str(), inc.c_str());
    return inc;
}

BackupContents read_backup(const std::string& path, std::string_view passphrase, const std::string& restore_to, const Progress& progress) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno(errno, path, "cannot open backup");
    struct stat st {};
    ::fstat(fd.get(), &st);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    uint8_t h[kHeader];
    if (pread_full(fd.get(), h, kHeader, 0) != static_cast<ssize_t>(kHeader) || std::memcmp(h, kMagic, 8) != 0)
        throw Error(EINVAL, path, fmt::format("{} is not an nvrfs backup", path));
    const uint32_t iters = get32(h + 8);
    if (iters < kBackupMinIterations) throw Error(EINVAL, path, fmt::format("{}: PBKDF2 iteration count {} is below policy", path, iters));
    const Keys k = derive(passphrase, ByteView(h + 12, 16), iters);
    const auto tag = hmac_sha256(k.header, ByteView(h, 48));
    if (!equal_ct(ByteView(tag.data(), 16), ByteView(h + 48, 16)))
        throw Error(EKEYREJECTED, path, fmt::format("{}: wrong passphrase, or the archive header was altered", path));
    std::array<uint8_t, 16> id{};
    std::memcpy(id.data(), h + 28, 16);

    BackupContents out;
    std::string stream;  // decrypted bytes not yet parsed
    size_t pos = 0;
    // The file being read out of the stream.
    struct Cur {
        bool active = false;
        BackupEntry e;
        uint64_t left = 0;
        UniqueFd fd;
        std::string tmp, final_path;
    } cur;
    std::unique_ptr<Sha256> hash;
    std::vector<BackupEntry> seen;
    bool manifest_seen = false;

    auto parse = [&]() {
        for (;;) {
            if (cur.active) {
                const size_t n = static_cast<size_t>(std::min<uint64_t>(cur.left, stream.size() - pos));
                if (n == 0 && cur.left > 0) return;
                const ByteView chunk(reinterpret_cast<const uint8_t*>(stream.data() + pos), n);
                hash->update(chunk);
                if (cur.fd && write_full(cur.fd.get(), chunk.data(), n) < 0) throw_errno(errno, cur.tmp, "cannot write restored file");
                if (progress) progress(n);
                pos += n;
                cur.left -= n;
                if (cur.left > 0) return;
                cur.e.sha256 = hex(hash->final());
                seen.push_back(cur.e);
                cur.active = false;
                continue;
            }
            if (stream.size() - pos < 5) return;
            const char type = stream[pos];
            const uint32_t len = get32(reinterpret_cast<const uint8_t*>(stream.data() + pos + 1));
            if (stream.size() - pos - 5 < len) return;
            auto j = nlohmann::json::parse(stream.substr(pos + 5, len), nullptr, false);
            pos += 5 + len;
            if (j.is_discarded()) throw Error(EBADMSG, path, "malformed entry in backup");
            if (type == 'M') {
                out.manifest = j;
                manifest_seen = true;
                return;
            }
            if (type != 'F') throw Error(EBADMSG, path, "unknown entry in backup");
            cur = Cur{};
            cur.active = true;
            cur.e.path = j.value("path", "");
            cur.e.size = j.value("size", uint64_t(0));
            cur.e.mtime = j.value("mtime", int64_t(0));
            cur.e.mode = j.value("mode", 0644u);
            cur.left = cur.e.size;
            if (!safe_name(cur.e.path)) throw Error(EBADMSG, path, "unsafe path in backup: " + cur.e.path);
            hash = std::make_unique<Sha256>();
            if (!restore_to.empty()) {
                cur.final_path = restore_to + "/" + cur.e.path;
                mkdirs(cur.final_path.substr(0, cur.final_path.rfind('/')));
                cur.tmp = cur.final_path + ".nvrfs-restore";
                cur.fd.reset(::open(cur.tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
                if (!cur.fd) throw_errno(errno, cur.tmp, "cannot create restored file");
            }
            if (cur.left == 0) continue;
        }
    };
    // Files restored so far wait for the manifest's hash before they appear;
    // if the archive turns out bad, they are removed.
    std::vector<std::pair<std::string, std::string>> pending;  // tmp, final
    struct Cleanup {
        std::vector<std::pair<std::string, std::string>>& pending;
        std::string& current;
        bool armed = true;
        ~Cleanup() {
            if (!armed) return;
            for (auto& p : pending) ::unlink(p.first.c_str());
            if (!current.empty()) ::unlink(current.c_str());
        }
    } cleanup{pending, cur.tmp};

    uint64_t off = kHeader, index = 0;
    bool final_seen = false;
    Bytes rec;
    while (off < size) {
        if (final_seen) throw Error(EBADMSG, path, fmt::format("{}: data after the final record (offset {})", path, off));
        uint8_t lb[4];
        if (pread_full(fd.get(), lb, 4, static_cast<off_t>(off)) != 4) break;
        const uint32_t len = get32(lb);
        if (len < kGcmNonce + kGcmTag || len > kRecord + kGcmNonce + kGcmTag || off + 4 + len > size)
            throw Error(EBADMSG, path, fmt::format("{}: record {} (offset {}) is cut short: the archive is truncated", path, index, off));
        rec.resize(len);
        if (pread_full(fd.get(), rec.data(), len, static_cast<off_t>(off + 4)) != static_cast<ssize_t>(len))
            throw Error(EIO, path, "cannot read backup");
        const size_t n = len - kGcmNonce - kGcmTag;
        const size_t at = stream.size();
        stream.resize(at + n);
        auto* dst = reinterpret_cast<uint8_t*>(stream.data() + at);
        const ByteView body(rec.data() + kGcmNonce, n);
        if (gcm_open(k.data, rec.data(), record_ad(id, index, false), body, rec.data() + kGcmNonce + n, dst)) {
        } else if (gcm_open(k.data, rec.data(), record_ad(id, index, true), body, rec.data() + kGcmNonce + n, dst)) {
            final_seen = true;
        } else {
            throw Error(EBADMSG, path, fmt::format("{}: record {} (offset {}) fails authentication: the archive was altered", path, index, off));
        }
        parse();
        // Restored files wait under a temporary name for the manifest check.
        if (!restore_to.empty()) {
            for (size_t i = pending.size(); i < seen.size(); ++i) {
                const std::string fin = restore_to + "/" + seen[i].path;
                pending.emplace_back(fin + ".nvrfs-restore", fin);
            }
        }
        stream.erase(0, pos);
        pos = 0;
        off += 4 + len;
        ++index;
    }
    cur.fd.reset();
    if (!final_seen || !manifest_seen)
        throw Error(EBADMSG, path, fmt::format("{}: the archive ends before its final record: it is truncated or incomplete", path));
    if (!out.manifest.value("complete", false)) throw Error(EBADMSG, path, fmt::format("{}: the archive is marked incomplete", path));
    const auto& files = out.manifest["files"];
    if (files.size() != seen.size())
        throw Error(EBADMSG, path, fmt::format("{}: the manifest lists {} files but the archive holds {}", path, files.size(), seen.size()));
    for (size_t i = 0; i < seen.size(); ++i) {
        if (files[i].value("path", "") != seen[i].path || files[i].value("sha256", "") != seen[i].sha256 ||
            files[i].value("size", uint64_t(0)) != seen[i].size)
            throw Error(EBADMSG, path, fmt::format("{}: {} does not match its SHA-256 in the manifest", path, seen[i].path));
        out.bytes += seen[i].size;
    }
    for (size_t i = 0; i < pending.size(); ++i) {
        if (::rename(pending[i].first.c_str(), pending[i].second.c_str()) < 0) throw_errno(errno, pending[i].second, "cannot restore");
        const timespec ts[2] = {{seen[i].mtime, 0}, {seen[i].mtime, 0}};
        ::utimensat(AT_FDCWD, pending[i].second.c_str(), ts, 0);
        ::chmod(pending[i].second.c_str(), seen[i].mode);
    }
    cleanup.armed = false;
    out.files = std::move(seen);
    return out;
}

}  // namespace nvrfs
