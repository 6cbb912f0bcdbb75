#include "transfer/backup_archive.hpp"
#include "base/big_endian.hpp"

#include "base/error.hpp"
#include "base/member_path.hpp"

#include <optional>

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

// The directory a restore writes into. Every path is resolved beneath it
// (member_path.hpp: no link followed, no escape), files are created under
// fresh O_EXCL temporary names and renamed into place only once the whole
// archive has verified; on failure the temporaries are removed.
class RestoreTarget {
public:
    explicit RestoreTarget(const std::string& dir) : dir_(dir) {
        ::mkdir(dir.c_str(), 0700);
        fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd_) throw_errno(errno, dir, "cannot open restore directory");
    }
    ~RestoreTarget() {
        if (armed_)
            for (const auto& t : temps_) member_path::unlink(fd_.get(), t.first);
    }
    // A new temporary for archive entry `name`; the descriptor to write it through.
    UniqueFd create(const std::string& name) {
        for (size_t s = name.find('/'); s != std::string::npos; s = name.find('/', s + 1)) {
            const std::string d = name.substr(0, s);
            if (int r = member_path::mkdir(fd_.get(), d, 0755); r < 0 && r != -EEXIST) throw_errno(-r, dir_ + "/" + d, "cannot create directory");
        }
        const auto slash = name.rfind('/');
        const std::string parent = slash == std::string::npos ? "" : name.substr(0, slash);
        std::array<uint8_t, 8> rnd{};
        random_bytes(rnd);
        const std::string tmp = (parent.empty() ? "" : parent + "/") + ".nvrfs-restore." + hex(rnd);
        const int fd = member_path::open_file(fd_.get(), tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) {
            const int e = member_path::is_tamper_errno(-fd) ? ELOOP : -fd;
            throw Error(e, dir_ + "/" + name,
                        fmt::format("cannot restore {} below {}: {}", name, dir_,
                                    e == ELOOP ? "a link or special file stands in the way (refused)" : std::strerror(e)));
        }
        temps_.emplace_back(tmp, name);
        return UniqueFd(fd);
    }
    // After verification: modes (never set-id or sticky) and times, then the final names.
    void commit(const std::vector<BackupEntry>& files) {
        for (size_t i = 0; i < temps_.size(); ++i) {
            const auto& [tmp, name] = temps_[i];
            UniqueFd f(member_path::open_file(fd_.get(), tmp, O_WRONLY));
            if (!f) throw_errno(EIO, dir_ + "/" + tmp, "cannot reopen restored file");
            const timespec ts[2] = {{files[i].mtime, 0}, {files[i].mtime, 0}};
            if (::fchmod(f.get(), files[i].mode & 0777) < 0 || ::futimens(f.get(), ts) < 0 || ::fsync(f.get()) < 0)
                throw_errno(errno, dir_ + "/" + name, "cannot restore");
            if (int r = member_path::rename(fd_.get(), tmp, name, 0); r < 0) throw_errno(-r, dir_ + "/" + name, "cannot restore");
        }
        armed_ = false;
    }

private:
    std::string dir_;
    UniqueFd fd_;
    std::vector<std::pair<std::string, std::string>> temps_;  // temporary, final name
    bool armed_ = true;
};

// Typed fields of an archive's JSON, which an enemy may have written (with
// the passphrase): any other shape is one clear error, never an abort.
const nlohmann::json& field(const nlohmann::json& j, const char* k, nlohmann::json::value_t t, const std::string& archive) {
    if (!j.is_object()) throw Error(EBADMSG, archive, fmt::format("{}: malformed archive entry (not an object)", archive));
    const auto it = j.find(k);
    // An integer field takes signed and unsigned JSON numbers alike.
    const bool ok = it != j.end() && (t == nlohmann::json::value_t::number_integer ? it->is_number_integer() : it->type() == t);
    if (!ok) throw Error(EBADMSG, archive, fmt::format("{}: malformed archive entry (field '{}' missing or of the wrong type)", archive, k));
    return *it;
}

}  // namespace

BackupWriter::BackupWriter(std::string path, std::string_view passphrase, uint32_t iterations, nlohmann::json meta)
    : path_(std::move(path)), meta_(std::move(meta)) {
    if (iterations < kBackupMinIterations || iterations > kBackupMaxIterations)
        throw Error(EINVAL, path_, fmt::format("PBKDF2 iterations must be between {} and {}", kBackupMinIterations, kBackupMaxIterations));
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

namespace {

// The archive's header: magic, PBKDF2 parameters within policy, and the
// passphrase (the header's HMAC). Returns the keys; `id` gets the archive id.
Keys open_header(int fd, const std::string& path, std::string_view passphrase, std::array<uint8_t, 16>& id) {
    uint8_t h[kHeader];
    if (pread_full(fd, h, kHeader, 0) != static_cast<ssize_t>(kHeader) || std::memcmp(h, kMagic, 8) != 0)
        throw Error(EINVAL, path, fmt::format("{} is not an nvrfs backup", path));
    const uint32_t iters = get32(h + 8);
    if (iters < kBackupMinIterations) throw Error(EINVAL, path, fmt::format("{}: PBKDF2 iteration count {} is below policy", path, iters));
    // An archive is hostile input too: an absurd count would burn the CPU for hours.
    if (iters > kBackupMaxIterations)
        throw Error(EINVAL, path, fmt::format("{}: PBKDF2 iteration count {} is above the limit of {}", path, iters, kBackupMaxIterations));
    Keys k = derive(passphrase, ByteView(h + 12, 16), iters);
    const auto tag = hmac_sha256(k.header, ByteView(h, 48));
    if (!equal_ct(ByteView(tag.data(), 16), ByteView(h + 48, 16)))
        throw Error(EKEYREJECTED, path, fmt::format("{}: wrong passphrase, or the archive header was altered", path));
    std::memcpy(id.data(), h + 28, 16);
    return k;
}

// The decrypted stream of entries ('F' file header + its bytes, 'M' the
// manifest), fed as records are authenticated; files are hashed and, when
// restoring, written to the target as they pass.
class EntryStream {
public:
    EntryStream(const std::string& path, const std::string& restore_to, const Progress& progress)
        : path_(path), restore_to_(restore_to), progress_(progress) {
        if (!restore_to.empty()) target_.emplace(restore_to);
    }
    void feed(const uint8_t* data, size_t n) {
        stream_.append(reinterpret_cast<const char*>(data), n);
        parse();
        stream_.erase(0, pos_);
        pos_ = 0;
    }
    // After the last record: the manifest must list exactly the files seen.
    BackupContents finish() {
        cur_.fd.reset();
        using T = nlohmann::json::value_t;
        if (!manifest_seen_)
            throw Error(EBADMSG, path_, fmt::format("{}: the archive ends before its final record: it is truncated or incomplete", path_));
        BackupContents out;
        out.manifest = manifest_;
        if (!field(out.manifest, "complete", T::boolean, path_).get<bool>())
            throw Error(EBADMSG, path_, fmt::format("{}: the archive is marked incomplete", path_));
        const auto& files = field(out.manifest, "files", T::array, path_);
        if (files.size() != seen_.size())
            throw Error(EBADMSG, path_, fmt::format("{}: the manifest lists {} files but the archive holds {}", path_, files.size(), seen_.size()));
        for (size_t i = 0; i < seen_.size(); ++i) {
            if (field(files[i], "path", T::string, path_) != seen_[i].path || field(files[i], "sha256", T::string, path_) != seen_[i].sha256 ||
                field(files[i], "size", T::number_unsigned, path_) != seen_[i].size)
                throw Error(EBADMSG, path_, fmt::format("{}: {} does not match its SHA-256 in the manifest", path_, seen_[i].path));
            out.bytes += seen_[i].size;
        }
        if (target_) target_->commit(seen_);
        out.files = std::move(seen_);
        return out;
    }

private:
    void parse() {
        for (;;) {
            if (cur_.active) {
                if (!file_bytes()) return;
                continue;
            }
            if (stream_.size() - pos_ < 5) return;
            const char type = stream_[pos_];
            const uint32_t len = get32(reinterpret_cast<const uint8_t*>(stream_.data() + pos_ + 1));
            if (stream_.size() - pos_ - 5 < len) return;
            auto j = nlohmann::json::parse(stream_.substr(pos_ + 5, len), nullptr, false);
            pos_ += 5 + len;
            if (j.is_discarded()) throw Error(EBADMSG, path_, "malformed entry in backup");
            if (type == 'M') {
                manifest_ = j;
                manifest_seen_ = true;
                return;
            }
            if (type != 'F') throw Error(EBADMSG, path_, "unknown entry in backup");
            start_file(j);
        }
    }
    void start_file(const nlohmann::json& j) {
        cur_ = Cur{};
        cur_.active = true;
        using T = nlohmann::json::value_t;
        cur_.e.path = field(j, "path", T::string, path_).get<std::string>();
        cur_.e.size = field(j, "size", T::number_unsigned, path_).get<uint64_t>();
        cur_.e.mtime = field(j, "mtime", T::number_integer, path_).get<int64_t>();
        cur_.e.mode = static_cast<uint32_t>(field(j, "mode", T::number_unsigned, path_).get<uint64_t>() & 0777);
        cur_.left = cur_.e.size;
        if (!safe_name(cur_.e.path)) throw Error(EBADMSG, path_, "unsafe path in backup: " + cur_.e.path);
        hash_ = std::make_unique<Sha256>();
        if (target_) cur_.fd = target_->create(cur_.e.path);
    }
    // The current file's bytes in the stream; false when more are needed.
    bool file_bytes() {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(cur_.left, stream_.size() - pos_));
        if (n == 0 && cur_.left > 0) return false;
        const ByteView chunk(reinterpret_cast<const uint8_t*>(stream_.data() + pos_), n);
        hash_->update(chunk);
        if (cur_.fd)
            if (int r = write_full(cur_.fd.get(), chunk.data(), n); r < 0) throw_errno(-r, restore_to_ + "/" + cur_.e.path, "cannot write restored file");
        if (progress_) progress_(n);
        pos_ += n;
        cur_.left -= n;
        if (cur_.left > 0) return false;
        cur_.e.sha256 = hex(hash_->final());
        seen_.push_back(cur_.e);
        cur_.active = false;
        return true;
    }

    const std::string& path_;
    const std::string& restore_to_;
    const Progress& progress_;
    std::string stream_;  // decrypted bytes not yet parsed
    size_t pos_ = 0;
    struct Cur {  // the file being read out of the stream
        bool active = false;
        BackupEntry e;
        uint64_t left = 0;
        UniqueFd fd;
    } cur_;
    std::optional<RestoreTarget> target_;
    std::unique_ptr<Sha256> hash_;
    std::vector<BackupEntry> seen_;
    nlohmann::json manifest_;
    bool manifest_seen_ = false;
};

}  // namespace

BackupContents read_backup(const std::string& path, std::string_view passphrase, const std::string& restore_to, const Progress& progress) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno(errno, path, "cannot open backup");
    struct stat st {};
    ::fstat(fd.get(), &st);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    std::array<uint8_t, 16> id{};
    const Keys k = open_header(fd.get(), path, passphrase, id);
    EntryStream entries(path, restore_to, progress);
    uint64_t off = kHeader, index = 0;
    bool final_seen = false;
    Bytes rec, plain;
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
        plain.resize(n);
        const ByteView body(rec.data() + kGcmNonce, n);
        if (gcm_open(k.data, rec.data(), record_ad(id, index, false), body, rec.data() + kGcmNonce + n, plain.data())) {
        } else if (gcm_open(k.data, rec.data(), record_ad(id, index, true), body, rec.data() + kGcmNonce + n, plain.data())) {
            final_seen = true;
        } else {
            throw Error(EBADMSG, path, fmt::format("{}: record {} (offset {}) fails authentication: the archive was altered", path, index, off));
        }
        entries.feed(plain.data(), n);
        off += 4 + len;
        ++index;
    }
    if (!final_seen)
        throw Error(EBADMSG, path, fmt::format("{}: the archive ends before its final record: it is truncated or incomplete", path));
    return entries.finish();
}

}  // namespace nvrfs
