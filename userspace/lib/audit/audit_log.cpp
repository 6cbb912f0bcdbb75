#include "audit/audit_log.hpp"
#include "base/big_endian.hpp"

#include "base/error.hpp"
#include "base/member_path.hpp"
#include "store/mirror_set.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <linux/falloc.h>
#include <syslog.h>
#include <unistd.h>

namespace nvrfs {
namespace {

constexpr size_t kMaxRecord = 64 * 1024;


std::string mac_of(const KeySet& keys, const nlohmann::json& rec_without_mac) {
    return hex(hmac_sha256(keys.audit_mac, as_bytes(rec_without_mac.dump())));
}

Bytes seal_frame(const KeySet& keys, const Uuid& set, const std::string& plain) {
    const uint32_t len = static_cast<uint32_t>(kGcmNonce + plain.size() + kGcmTag);
    Bytes f(4 + len + 4);
    put32(f.data(), len);
    uint8_t* nonce = f.data() + 4;
    random_bytes({nonce, kGcmNonce});
    gcm_seal(keys.audit_enc, nonce, ByteView(set.data(), set.size()), as_bytes(plain), nonce + kGcmNonce,
             nonce + kGcmNonce + plain.size());
    put32(f.data() + 4 + len, len);
    return f;
}

// Make the log open on `to` (an O_APPEND descriptor) a copy of the one on
// `from`. copy_file_range refuses an O_APPEND target, so append mode is lifted
// for the copy. 0 or -errno.
int replace_log(int from, int to) {
    struct stat st {};
    if (::fstat(from, &st) < 0 || ::ftruncate(to, 0) < 0) return -errno;
    ::fcntl(to, F_SETFL, 0);
    const int r = copy_range(from, 0, to, 0, static_cast<uint64_t>(st.st_size));
    if (::fcntl(to, F_SETFL, O_APPEND) < 0 && r == 0) return -errno;
    return r;
}

// The member's log, opened beneath its root. A link or special file planted
// in its place is removed (never followed or written through) and the log
// starts empty there; the constructor then copies in the reference log.
int open_log(const Member& m, std::vector<std::string>* notes) {
    const int flags = O_RDWR | O_CREAT | O_APPEND;
    int fd = member_path::open_file(m.dirfd.get(), kAuditLogPath, flags, 0600);
    if (fd < 0 && member_path::is_tamper_errno(-fd)) {
        if (notes)
            notes->push_back(fmt::format("TamperDetected: {}/{} was replaced by a link or special file; removed, the log is "
                                         "copied from another member", m.path, kAuditLogPath));
        if (int r = member_path::unlink(m.dirfd.get(), kAuditLogPath); r < 0) fd = r;
        else fd = member_path::open_file(m.dirfd.get(), kAuditLogPath, flags | O_EXCL, 0600);
    }
    if (fd < 0) throw_errno(-fd, m.path + "/" + kAuditLogPath, "cannot open audit log");
    return fd;
}

enum class FrameStatus { Ok, End, Torn, Forged };

// A log file read through a window: one pread per 256 KiB of records, not
// two per record (a recorder's log holds millions of them).
class LogReader {
public:
    LogReader(int fd, uint64_t size) : fd_(fd), size_(size) {}
    int fd() const { return fd_; }
    uint64_t size() const { return size_; }
    // The `n` bytes at `off` (off + n <= size()), valid until the next call;
    // nullptr when they cannot be read.
    const uint8_t* at(uint64_t off, size_t n) {
        if (off < start_ || off + n > start_ + have_) {
            const size_t len = static_cast<size_t>(std::min<uint64_t>(std::max(n, kWindow), size_ - off));
            if (buf_.size() < len) buf_.resize(len);
            const ssize_t r = pread_full(fd_, buf_.data(), len, static_cast<off_t>(off));
            start_ = off, have_ = r > 0 ? static_cast<size_t>(r) : 0;
            if (have_ < n) return nullptr;
        }
        return buf_.data() + (off - start_);
    }

private:
    static constexpr size_t kWindow = 256 * 1024;
    int fd_;
    uint64_t size_, start_ = 0;
    size_t have_ = 0;
    Bytes buf_;
};

// Nothing but zeros from `off` to the end: an append whose size reached the
// disk and whose bytes did not (ext4 after an I/O error or a power cut).
bool zeros_to_end(LogReader& in, uint64_t off) {
    while (off < in.size()) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(65536, in.size() - off));
        const uint8_t* b = in.at(off, n);
        if (!b || !std::all_of(b, b + n, [](uint8_t x) { return x == 0; })) return false;
        off += n;
    }
    return true;
}

// Reads the frame at `off`; on Ok fills `plain` and advances `off`.
FrameStatus read_frame(LogReader& in, uint64_t& off, const KeySet& keys, const Uuid& set, std::string& plain) {
    const uint64_t file_size = in.size();
    if (off == file_size) return FrameStatus::End;
    const auto bad = [&] { return zeros_to_end(in, off) ? FrameStatus::Torn : FrameStatus::Forged; };
    const uint8_t* lb = off + 4 > file_size ? nullptr : in.at(off, 4);
    if (!lb) return FrameStatus::Torn;
    const uint32_t len = get32(lb);
    if (len < kGcmNonce + kGcmTag || len > kMaxRecord) return bad();
    if (off + 8 + len > file_size) return FrameStatus::Torn;
    const uint8_t* f = in.at(off + 4, len + 4);
    if (!f) return FrameStatus::Torn;
    if (get32(f + len) != len) return bad();
    plain.resize(len - kGcmNonce - kGcmTag);
    if (!gcm_open(keys.audit_enc, f, ByteView(set.data(), set.size()), ByteView(f + kGcmNonce, plain.size()),
                  f + kGcmNonce + plain.size(), reinterpret_cast<uint8_t*>(plain.data())))
        return bad();
    off += 8 + len;
    return FrameStatus::Ok;
}

}  // namespace

nlohmann::json audit_record(const std::string& event, const Caller& who, const std::string& path, int err) {
    nlohmann::json r;
    r["event"] = event;
    r["uid"] = who.uid;
    r["user"] = who.user;
    r["pid"] = who.pid;
    r["comm"] = who.comm;
    if (!path.empty()) r["path"] = path;
    r["result"] = err == 0 ? "ok" : errno_name(err);
    return r;
}

AuditLog::AuditLog(MirrorSet& set, std::vector<std::string>* notes) : set_(set), fds_(kMaxMembers), ends_(kMaxMembers) {
    bool have_tail = false;
    size_t ref = 0;
    std::vector<std::pair<size_t, uint64_t>> tails;  // member, last seq
    for (size_t i : set_.writable_members()) {
        Member& m = set_.member(i);
        UniqueFd fd(open_log(m, notes));
        struct stat st {};
        ::fstat(fd.get(), &st);
        const uint64_t size = static_cast<uint64_t>(st.st_size);
        // Fast path: the last frame, found through its trailing length.
        uint64_t seq = 0;
        std::string mac, plain;
        bool found = false;
        uint8_t lb[4];
        if (size >= 8 && pread_full(fd.get(), lb, 4, static_cast<off_t>(size - 4)) == 4) {
            uint64_t off = size - 8 - get32(lb);
            LogReader in(fd.get(), size);
            if (get32(lb) <= kMaxRecord && size >= 8 + get32(lb) &&
                read_frame(in, off, set_.keys(), set_.set_uuid(), plain) == FrameStatus::Ok) {
                auto j = nlohmann::json::parse(plain, nullptr, false);
                if (!j.is_discarded() && j.contains("seq") && j.contains("mac")) {
                    seq = j["seq"].get<uint64_t>();
                    mac = j["mac"].get<std::string>();
                    found = true;
                }
            }
        }
        if (!found && size > 0) {
            // Slow path: walk the frames; cut a torn tail left by a crash.
            uint64_t off = 0, good_end = 0;
            FrameStatus s;
            LogReader in(fd.get(), size);
            while ((s = read_frame(in, off, set_.keys(), set_.set_uuid(), plain)) == FrameStatus::Ok) {
                auto j = nlohmann::json::parse(plain, nullptr, false);
                if (!j.is_discarded() && j.contains("seq")) {
                    seq = j["seq"].get<uint64_t>();
                    mac = j.value("mac", "");
                }
                good_end = off;
            }
            if (s == FrameStatus::Torn) {
                if (::ftruncate(fd.get(), static_cast<off_t>(good_end)) == 0 && notes)
                    notes->push_back(fmt::format("AuditLogRecovered: {}: cut a torn record at offset {}", m.path, good_end));
            } else if (s == FrameStatus::Forged && notes) {
                notes->push_back(fmt::format("TamperDetected: {}: audit log record after #{} fails authentication", m.path, seq));
            }
        }
        // The chain continues from the longest log of a complete member (a
        // member being rebuilt may lag).
        if (set_.healthy(i) && (!have_tail || seq > seq_)) {
            seq_ = seq;
            prev_mac_ = mac;
            have_tail = true;
            ref = i;
        }
        tails.emplace_back(i, seq);
        fds_[i] = std::move(fd);
    }
    // A crash between the members' appends leaves one log a record short:
    // give it the reference's copy, or its chain would break from here on.
    for (auto [i, seq] : tails) {
        if (i == ref || seq == seq_) continue;
        if (replace_log(fds_[ref].get(), fds_[i].get()) == 0 && notes)
            notes->push_back(fmt::format("AuditLogRecovered: {} ended at record #{}, {} at #{}: copied the longer log",
                                         set_.member(i).path, seq, set_.member(ref).path, seq_));
    }
}

// Where the log ends on one member: its size, and how far space is allocated
// for it. Appends land in space allocated ahead (kLogAhead at a time), so a
// set that recordings have filled still has room for the records that say so.
constexpr uint64_t kLogAhead = 1 << 20;

int AuditLog::append_frame(size_t i, const Bytes& frame) {
    const int fd = fds_[i].get();
    End& e = ends_[i];
    if (!e.known) {
        struct stat st {};
        if (::fstat(fd, &st) < 0) return -errno;
        e.size = e.allocated = static_cast<uint64_t>(st.st_size);
        e.known = true;
    }
    if (e.size + frame.size() > e.allocated) {
        int r = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(e.size), static_cast<off_t>(kLogAhead));
        if (r < 0 && errno == ENOSPC)
            r = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(e.size), static_cast<off_t>(frame.size()));
        if (r < 0 && errno != EOPNOTSUPP) return -errno;  // nothing written: the log stays whole
        e.allocated = r < 0 ? e.size : e.size + std::max<uint64_t>(kLogAhead, frame.size());
    }
    if (int r = write_full(fd, frame.data(), frame.size()); r < 0) {
        // A frame is written whole or not at all: cut a short write back.
        if (::ftruncate(fd, static_cast<off_t>(e.size)) < 0) e.known = false;
        return r;
    }
    e.size += frame.size();
    return 0;
}

nlohmann::json AuditLog::append(nlohmann::json rec) {
    std::vector<std::pair<size_t, int>> results;
    bool torn = false;
    {
        std::lock_guard lk(mu_);
        rec["seq"] = seq_ + 1;
        if (!rec.contains("time")) rec["time"] = rfc3339_now();
        rec["prev"] = prev_mac_;
        const std::string mac = mac_of(set_.keys(), rec);
        rec["mac"] = mac;
        const Bytes frame = seal_frame(set_.keys(), set_.set_uuid(), rec.dump());
        size_t ok = 0;
        uint64_t end = 0;  // where the record ends (on the first healthy member that took it)
        for (size_t i : set_.writable_members()) {
            if (!fds_[i]) continue;
            const int r = append_frame(i, frame);
            ok += r == 0;
            if (r == 0 && !end && set_.healthy(i)) end = ends_[i].size;
            results.emplace_back(i, r);
        }
        // The chain moves on only when the record is down somewhere; else
        // the next record takes its place and the chain stays unbroken.
        if (ok > 0) {
            ++seq_;
            prev_mac_ = mac;
            lost_ = false;
            if (follower_) follower_(rec, end);
        } else {
            torn = !lost_;
            lost_ = true;
        }
    }
    // Outside the lock: failing a member raises an alert, which appends again.
    set_.combine("append audit record", kAuditLogPath, results);
    if (torn) {
        ::syslog(LOG_DAEMON | LOG_CRIT, "nvrfs: an audit record could not be written on any member (no space)");
        if (on_lost_) on_lost_(rec.value("event", "?"));  // once, until a record is written again
    }
    return rec;
}

// An fdatasync waits for the member's journal commit, which on a busy disk
// waits for the data written before it: 450 ms with 256 camera streams. It
// runs on descriptors of its own, outside mu_, so that appends (every create,
// close of a write session, unlink) go on meanwhile; what was appended
// before the call is durable when it returns, as before.
std::vector<UniqueFd> AuditLog::sync_fds() const {
    std::vector<UniqueFd> out;
    for (size_t i : set_.writable_members())
        if (fds_[i])
            if (UniqueFd d(::fcntl(fds_[i].get(), F_DUPFD_CLOEXEC, 0)); d) out.push_back(std::move(d));
    return out;
}

void AuditLog::sync() { (void)synced_head(); }

void AuditLog::attach(size_t idx, const std::function<void()>& joined) {
    std::lock_guard lk(mu_);
    Member& dst = set_.member(idx);
    for (size_t i : set_.healthy_members()) {
        if (!fds_[i]) continue;
        UniqueFd fd(open_log(dst, nullptr));
        // Appends are blocked (mu_ held), so the copy is the whole chain so far.
        if (int r = replace_log(fds_[i].get(), fd.get()); r < 0)
            throw_errno(-r, dst.path + "/" + kAuditLogPath, "cannot copy audit log");
        fds_[idx] = std::move(fd);
        ends_[idx] = End{};
        joined();
        return;
    }
    throw Error(EIO, dst.path, "no complete member holds an audit log to copy");
}

AuditLog::Head AuditLog::synced_head() {
    Head h;
    std::vector<UniqueFd> fds;
    {
        std::lock_guard lk(mu_);
        h = Head{seq_, prev_mac_, 0};
        for (size_t i : set_.healthy_members()) {
            if (!fds_[i]) continue;
            struct stat st {};
            if (ends_[i].known) h.end = ends_[i].size;
            else if (::fstat(fds_[i].get(), &st) == 0) h.end = static_cast<uint64_t>(st.st_size);
            else continue;
            break;
        }
        fds = sync_fds();
    }
    for (const UniqueFd& fd : fds) ::fdatasync(fd.get());  // the head was written before: durable after
    return h;
}

std::optional<std::pair<uint64_t, std::string>> AuditLog::record_ending_at(uint64_t end) const {
    std::lock_guard lk(mu_);
    for (size_t i : set_.healthy_members()) {
        if (!fds_[i]) continue;
        const int fd = fds_[i].get();
        struct stat st {};
        uint8_t lb[4];
        if (::fstat(fd, &st) < 0 || end < 8 || end > static_cast<uint64_t>(st.st_size) ||
            pread_full(fd, lb, 4, static_cast<off_t>(end - 4)) != 4 || get32(lb) > kMaxRecord || end < 8 + get32(lb))
            continue;
        uint64_t off = end - 8 - get32(lb);
        std::string plain;
        LogReader in(fd, end);
        if (read_frame(in, off, set_.keys(), set_.set_uuid(), plain) != FrameStatus::Ok) continue;
        auto j = nlohmann::json::parse(plain, nullptr, false);
        if (j.is_discarded() || !j.contains("seq") || !j["seq"].is_number_unsigned() || !j.contains("mac") || !j["mac"].is_string())
            continue;
        return std::make_pair(j["seq"].get<uint64_t>(), j["mac"].get<std::string>());
    }
    return std::nullopt;
}

VerifyResult AuditLog::follow(Follower each, const LogPosition& from) {
    std::lock_guard lk(mu_);
    VerifyResult r{false, 0, 0, "no complete member holds an audit log"};
    for (size_t i : set_.healthy_members())
        if (fds_[i]) {
            r = read_audit_log(fds_[i].get(), set_.keys(), set_.set_uuid(), from,
                               [&](nlohmann::json&& j, uint64_t end) { each(j, end); });
            break;
        }
    follower_ = std::move(each);
    return r;
}

uint64_t AuditLog::last_seq() const {
    std::lock_guard lk(mu_);
    return seq_;
}

VerifyResult read_audit_log(int fd, const KeySet& keys, const Uuid& set_uuid, const std::function<void(nlohmann::json&&)>& each) {
    if (!each) return read_audit_log(fd, keys, set_uuid, LogPosition{}, {});
    return read_audit_log(fd, keys, set_uuid, LogPosition{}, [&](nlohmann::json&& j, uint64_t) { each(std::move(j)); });
}

VerifyResult read_audit_log(int fd, const KeySet& keys, const Uuid& set_uuid, const LogPosition& from,
                            const std::function<void(nlohmann::json&&, uint64_t end)>& each) {
    VerifyResult r;
    struct stat st {};
    if (::fstat(fd, &st) < 0) {
        r.ok = false;
        r.message = std::strerror(errno);
        return r;
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    uint64_t off = from.end, expect_seq = from.seq + 1;
    std::string prev = from.mac, plain;
    LogReader in(fd, size);
    for (;;) {
        const uint64_t at = off;
        auto bad = [&](const std::string& why) {
            r.ok = false;
            r.first_bad = r.records + 1;
            r.message = fmt::format("record #{} (byte offset {}): {}", r.first_bad, at, why);
            return r;
        };
        const FrameStatus s = read_frame(in, off, keys, set_uuid, plain);
        if (s == FrameStatus::End) break;
        if (s == FrameStatus::Torn) return bad("truncated record (torn write or cut file)");
        if (s == FrameStatus::Forged) return bad("authentication failed: the record was edited or is not from this set");
        auto j = nlohmann::json::parse(plain, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("seq") || !j.contains("mac") || !j.contains("prev"))
            return bad("malformed record");
        const uint64_t seq = j["seq"].is_number_unsigned() ? j["seq"].get<uint64_t>() : 0;
        if (seq != expect_seq)
            return bad(fmt::format("sequence number {} where {} was expected: a record was deleted or reordered", seq, expect_seq));
        if (j["prev"] != prev) return bad("chain broken: `prev` does not match the previous record's MAC");
        if (!j["mac"].is_string()) return bad("malformed record");
        // The MAC is of the record without it: taken out and put back, not
        // a copy of the record each time.
        std::string mac = std::move(j["mac"].get_ref<std::string&>());
        j.erase("mac");
        if (mac_of(keys, j) != mac) return bad("record MAC does not verify");
        prev = mac;
        j["mac"] = std::move(mac);
        ++expect_seq;
        ++r.records;
        if (each) each(std::move(j), off);
    }
    return r;
}

}  // namespace nvrfs
