// archive.cpp — the archive tier's mover, read cache and bookkeeping.
#include "admin/archive.hpp"

#include "audit/alerts.hpp"
#include "audit/audit_log.hpp"
#include "base/caller.hpp"
#include "base/error.hpp"
#include "base/io.hpp"
#include "base/plain_path.hpp"

#include <algorithm>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

namespace nvrfs {
namespace {

constexpr uint64_t kPart = 16 << 20;           // multipart part size
constexpr auto kMaxBackoff = std::chrono::seconds(300);

// Parts of at least kPart; one PUT when the whole object is no larger.
class S3Upload : public ArchiveStore::Upload {
public:
    // `done` runs once the object is complete.
    S3Upload(S3Client& c, std::string key, uint64_t total, std::function<void(const std::function<void()>&)> guard,
             std::function<void()> done)
        : c_(c), key_(std::move(key)), total_(total), guard_(std::move(guard)), done_(std::move(done)) {}
    ~S3Upload() override {
        if (!upload_id_.empty() && !finished_) {
            try {
                c_.abort_multipart(key_, upload_id_);
            } catch (...) {
                // the store forgets incomplete uploads by its own lifecycle rules
            }
        }
    }
    void part(ByteView stored) override {
        buf_.insert(buf_.end(), stored.begin(), stored.end());
        if (total_ > kPart)
            while (buf_.size() >= kPart) flush(kPart);
    }
    void finish() override {
        if (total_ <= kPart) {
            guard_([&] { c_.put(key_, buf_); });
        } else {
            if (!buf_.empty()) flush(buf_.size());
            guard_([&] { c_.complete_multipart(key_, upload_id_, etags_); });
        }
        finished_ = true;
        done_();
    }

private:
    void flush(size_t n) {
        guard_([&] {
            if (upload_id_.empty()) upload_id_ = c_.begin_multipart(key_);
            etags_.push_back(c_.put_part(key_, upload_id_, static_cast<int>(etags_.size() + 1), ByteView(buf_.data(), n)));
        });
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<long>(n));
    }
    S3Client& c_;
    std::string key_;
    uint64_t total_;
    std::function<void(const std::function<void()>&)> guard_;
    std::function<void()> done_;
    Bytes buf_;
    std::string upload_id_;
    std::vector<std::string> etags_;
    bool finished_ = false;
};

}  // namespace

std::optional<ArchiveSettings> ArchiveSettings::from(const Config& cfg) {
    const std::string a = cfg.text("archive");
    if (a.empty()) return std::nullopt;
    ArchiveSettings s;
    const std::string rest = a.substr(5);  // after s3://
    const auto slash = rest.find('/');
    s.bucket = rest.substr(0, slash);
    if (slash != std::string::npos) s.prefix = rest.substr(slash + 1);
    while (!s.prefix.empty() && s.prefix.back() == '/') s.prefix.pop_back();
    s.endpoint = cfg.text("archive_endpoint");
    if (s.endpoint.empty())
        throw Error(EINVAL, "archive_endpoint", "archive = " + a + " needs archive_endpoint = http(s)://host:port");
    s.credentials = cfg.text("archive_credentials");
    s.after = cfg.duration("archive_after");
    s.retention = cfg.duration("archive_retention");
    s.max_rate = cfg.size("archive_max_rate");
    s.cache = cfg.size("archive_cache");
    s.when_free_below = cfg.fraction("archive_when_free_below");
    s.check = std::chrono::seconds(cfg.seconds("check_interval"));
    s.interval = std::chrono::seconds(std::max<uint64_t>(cfg.seconds("check_interval") * 12, 10));
    return s;
}

ArchiveTier::ArchiveTier(Volume& vol, Alerts& alerts, AuditLog& log, ArchiveSettings s, const std::string& set_uuid,
                         const std::string& state_dir)
    : vol_(vol), alerts_(alerts), log_(log), s_(std::move(s)), set_uuid_(set_uuid),
      forget_file_(set_uuid + ".archive-forget"), cache_dir_(set_uuid + ".archive-cache") {
    client_ = std::make_unique<S3Client>(s_.endpoint, s_.bucket, S3Credentials::load(s_.credentials), s_.max_rate);
    if (::mkdir(state_dir.c_str(), 0700) < 0 && errno != EEXIST) throw_errno(errno, state_dir, "cannot create state directory");
    state_fd_.reset(::open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!state_fd_) throw_errno(errno, state_dir, "cannot open state directory");
    // A cache from before may hold anything: start empty.
    std::error_code ec;
    std::filesystem::remove_all(state_dir + "/" + cache_dir_, ec);
    if (::mkdirat(state_fd_.get(), cache_dir_.c_str(), 0700) < 0 && errno != EEXIST)
        throw_errno(errno, state_dir + "/" + cache_dir_, "cannot create the archive cache");
    cache_fd_.reset(::openat(state_fd_.get(), cache_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!cache_fd_) throw_errno(errno, state_dir + "/" + cache_dir_, "cannot open the archive cache");
    // Deletions the store had not taken before the last stop.
    try {
        const std::string text = read_file_at(state_fd_.get(), forget_file_, 64 << 20);
        size_t pos = 0;
        while (pos < text.size()) {
            auto nl = text.find('\n', pos);
            if (nl == std::string::npos) break;  // every line ends in one: the file is replaced whole
            const auto j = nlohmann::json::parse(text.substr(pos, nl - pos), nullptr, false);
            pos = nl + 1;
            if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) continue;
            const auto id = unhex(j["id"].get<std::string>());
            if (id && id->size() == 16) forgotten_.push_back({j["id"], j.value("path", ""), j.value("why", "")});
        }
    } catch (const Error&) {
        // none
    }
}

ArchiveTier::~ArchiveTier() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    {
        std::lock_guard lk(cache_mu_);
        prefetch_q_.clear();
    }
    prefetch_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (auto& t : prefetch_threads_) t.join();
}

void ArchiveTier::start() {
    thread_ = std::thread([this] { loop(); });
    for (int i = 0; i < 3; ++i) prefetch_threads_.emplace_back([this] { prefetch_loop(); });
}

std::string ArchiveTier::object_name(const FileId& id) const {
    return (s_.prefix.empty() ? "" : s_.prefix + "/") + set_uuid_ + "/" + hex(id);
}

void ArchiveTier::s3(const std::string& what, const std::function<void()>& f) {
    try {
        f();
        note_ok();
    } catch (const S3Error& e) {
        note_error(what, e);
        throw Error(e.not_found() ? ENOENT : e.short_object() ? EBADMSG : EIO, what, fmt::format("{}: {}", what, e.what()));
    }
}

void ArchiveTier::note_error(const std::string& what, const S3Error& e) {
    // The store answered: a missing or short object is the caller's to judge
    // (an upload a writer overtook, or an object cut in the bucket).
    if (e.not_found() || e.short_object()) return;
    bool first;
    {
        std::lock_guard lk(mu_);
        first = reachable_;
        reachable_ = false;
        last_error_ = fmt::format("{}: {}", what, e.what());
        last_error_at_ = rfc3339_now();
        backoff_ = std::min<std::chrono::seconds>(kMaxBackoff, backoff_.count() ? backoff_ * 2 : std::chrono::seconds(5));
        next_try_ = std::chrono::steady_clock::now() + backoff_;
    }
    if (first)
        alerts_.raise("ArchiveUnreachable",
                      fmt::format("the archive {} at {} {}: {}; recordings stay on the members, retrying with backoff",
                                  s_.target(), s_.endpoint, e.refused() ? "refused the credentials" : "cannot be used", e.what()));
}

void ArchiveTier::note_ok() {
    bool back;
    {
        std::lock_guard lk(mu_);
        back = !reachable_;
        reachable_ = true;
        backoff_ = std::chrono::seconds(0);
    }
    if (back) alerts_.raise("ArchiveReachable", fmt::format("the archive {} answers again", s_.target()));
}

std::unique_ptr<ArchiveStore::Upload> ArchiveTier::upload(const FileId& id, uint64_t total) {
    const std::string key = object_name(id);
    return std::make_unique<S3Upload>(
        *client_, key, total, [this, key](const std::function<void()>& f) { s3("upload " + key, f); },
        [this, hid = hex(id)] { replaced(hid); });
}

std::string ArchiveTier::check(const FileId& id, uint64_t total) {
    const std::string key = object_name(id);
    std::optional<uint64_t> n;
    try {
        s3("HEAD " + key, [&] { n = client_->head(key); });
    } catch (const Error& e) {
        return fmt::format("the archive could not be asked ({})", e.what());
    }
    if (!n) return fmt::format("its object {} is missing from the archive", key);
    if (*n != total) return fmt::format("its object {} is {} bytes, not {}", key, *n, total);
    return "";
}

void ArchiveTier::forget(const FileId& id, const std::string& path, const std::string& why) {
    const std::string hid = hex(id);
    uncache(hid);  // its blocks are of an object on its way out (before mu_: cache_mu_ comes first)
    std::lock_guard lk(mu_);
    if (why == "recalled") recalled_[hid] = ::time(nullptr);
    // One deletion per object: a recall and an unlink of the same file can
    // both have read it archived.
    if (std::any_of(forgotten_.begin(), forgotten_.end(), [&](const Forgotten& f) { return f.id == hid; })) return;
    forgotten_.push_back({hid, path, why});
    save_forgotten();
}

// A new object of file `hid` is complete under the name a queued deletion
// is for: that deletion was for the object this one replaced, and would now
// take the new one (a file recalled and archived again before the queue
// drained: archived on the members, its bytes nowhere).
void ArchiveTier::replaced(const std::string& hid) {
    uncache(hid);  // blocks of the object it replaced
    std::lock_guard lk(mu_);
    const auto n = std::erase_if(forgotten_, [&](const Forgotten& f) { return f.id == hid; });
    if (n) save_forgotten();
}

// Under mu_.
void ArchiveTier::save_forgotten() {
    std::string text;
    // One JSON object a line: a path may hold any byte but NUL.
    for (const auto& f : forgotten_) text += nlohmann::json{{"id", f.id}, {"path", f.path}, {"why", f.why}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    try {
        write_file_atomic_at(state_fd_.get(), forget_file_, text.data(), text.size(), 0600);
    } catch (const Error&) {
        // the state dir is gone or full: the queue still lives in memory
    }
}

}  // namespace nvrfs
