#include "admin/space_monitor.hpp"

#include "audit/alerts.hpp"
#include "base/error.hpp"
#include "store/volume.hpp"

#include <algorithm>
#include <ctime>
#include <fmt/format.h>
#include <fnmatch.h>
#include <nlohmann/json.hpp>

namespace nvrfs {
namespace {

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s + ",") {
        if (c == ',' || c == ' ') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    return out;
}

}  // namespace

SpaceSettings SpaceSettings::from(const Config& cfg) {
    SpaceSettings s;
    s.min_free = cfg.min_free();
    s.recycle = cfg.boolean("recycle");
    s.interval = std::chrono::seconds(cfg.seconds("check_interval"));
    s.recycle_dirs = split_list(cfg.text("recycle_dirs"));
    for (auto e : split_list(cfg.text("recycle_ext"))) {
        std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
        if (!e.empty() && e[0] == '.') e.erase(0, 1);
        s.recycle_ext.push_back(e);
    }
    return s;
}

bool recyclable_path(const std::string& path, const SpaceSettings& s) {
    if (path.size() < 2 || path[0] != '/') return false;
    const auto slash = path.find('/', 1);
    if (slash == std::string::npos) return false;  // a file at the top is never a recording to recycle
    const std::string top = path.substr(1, slash - 1);
    bool dir_ok = false;
    for (const auto& g : s.recycle_dirs) dir_ok |= ::fnmatch(g.c_str(), top.c_str(), 0) == 0;
    if (!dir_ok) return false;
    const std::string name = path.substr(path.rfind('/') + 1);
    const auto dot = name.rfind('.');
    if (dot == std::string::npos || dot == 0) return false;
    std::string ext = name.substr(dot + 1);
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return std::find(s.recycle_ext.begin(), s.recycle_ext.end(), ext) != s.recycle_ext.end();
}

SpaceMonitor::SpaceMonitor(Volume& vol, Alerts& alerts, SpaceSettings settings)
    : vol_(vol), alerts_(alerts), settings_(std::move(settings)) {
    last_written_ = vol_.bytes_written();
    last_check_ = std::chrono::steady_clock::now();
    thread_ = std::thread([this] {
        std::unique_lock lk(mu_);
        while (!stop_) {
            lk.unlock();
            try {
                check_once();
            } catch (const std::exception&) {
                // A failing check must not stop the next one.
            }
            lk.lock();
            const auto wait = settings_.interval;
            cv_.wait_for(lk, wait, [this] { return stop_; });
        }
    });
}

SpaceMonitor::~SpaceMonitor() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void SpaceMonitor::reconfigure(SpaceSettings settings) {
    {
        std::lock_guard lk(mu_);
        settings_ = std::move(settings);
    }
    cv_.notify_all();
}

SpaceSettings SpaceMonitor::settings() const {
    std::lock_guard lk(mu_);
    return settings_;
}

SpaceInfo SpaceMonitor::space() const {
    SpaceSettings s;
    uint64_t rate;
    {
        std::lock_guard lk(mu_);
        s = settings_;
        rate = rate_;
    }
    const struct statvfs st = vol_.statfs();
    SpaceInfo i;
    i.total = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
    i.free = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    i.threshold = s.min_free.bytes(i.total);
    // What the writers may add before the next check, three times over, but
    // at most 5% of the set (a burst must not empty it), plus 1%.
    i.headroom = std::min(i.total / 20, 3 * rate * static_cast<uint64_t>(s.interval.count())) + i.total / 100;
    return i;
}

void SpaceMonitor::check_once() {
    MirrorSet& set = vol_.mirror();
    for (size_t i : set.healthy_members())
        if (!set.alive(i)) set.fail(i, ENODEV, "health check: member directory removed or superblock missing");
    {
        const auto now = std::chrono::steady_clock::now();
        const uint64_t written = vol_.bytes_written();
        const double secs = std::chrono::duration<double>(now - last_check_).count();
        std::lock_guard lk(mu_);
        if (secs > 0.1) rate_ = static_cast<uint64_t>(static_cast<double>(written - last_written_) / secs);
        last_written_ = written;
        last_check_ = now;
    }
    const SpaceSettings s = settings();
    SpaceInfo info = space();
    if (s.recycle && info.free < info.threshold + info.headroom) {
        recycle_until(info.threshold + info.headroom, s);
        info = space();
    }
    if (info.free < info.threshold) {
        if (!low_) {
            low_ = true;
            alerts_.raise(alert::SpaceLow, fmt::format("free space {} bytes is below the configured minimum {} bytes (of {})",
                                                       info.free, info.threshold, info.total));
        }
    } else if (low_) {
        low_ = false;
        alerts_.raise(alert::SpaceRecovered, fmt::format("free space {} bytes is above the configured minimum {} bytes",
                                                         info.free, info.threshold));
    }
}

bool SpaceMonitor::recycle_for(uint64_t bytes) {
    const SpaceSettings s = settings();
    if (!s.recycle) return false;
    const SpaceInfo info = space();
    // Free a little more than asked, so the next writers do not come back at once.
    return recycle_until(std::max(bytes + info.total / 100, info.threshold), s);
}

bool SpaceMonitor::recycle_until(uint64_t want_free, const SpaceSettings& s) {
    std::lock_guard rl(recycle_mu_);
    SpaceInfo info = space();
    if (info.free >= want_free) return true;  // another recycler got there first
    struct Rec {
        struct timespec mtime;
        std::string path;
    };
    std::vector<Rec> files;
    std::vector<std::string> dirs;
    for (const auto& n : vol_.readdir("/")) {
        const std::string p = "/" + n;
        bool match = false;
        for (const auto& g : s.recycle_dirs) match |= ::fnmatch(g.c_str(), n.c_str(), 0) == 0;
        if (!match) continue;
        try {
            if (S_ISDIR(vol_.getattr(p, nullptr).st_mode)) dirs.push_back(p);
        } catch (const Error&) {
        }
    }
    vol_.walk(std::move(dirs), [&](const std::string& p, const struct stat& st) {
        if (S_ISREG(st.st_mode) && recyclable_path(p, s)) files.push_back({st.st_mtim, p});
    });
    std::sort(files.begin(), files.end(), [](const Rec& a, const Rec& b) { return oldest_first(a.mtime, a.path, b.mtime, b.path); });
    const Caller self = Caller::daemon();
    const time_t now = ::time(nullptr);
    uint64_t removed = 0;
    time_t oldest = 0;
    for (const auto& f : files) {
        if (info.free >= want_free) break;
        if (vol_.is_open(f.path)) continue;  // being recorded, played back or exported
        // Archived: nothing of it is on the members to free, and the archive
        // keeps it until archive_retention.
        if (vol_.archived(f.path)) continue;
        try {
            const int64_t age = static_cast<int64_t>(now - f.mtime.tv_sec);
            vol_.unlink(f.path, self, [&](nlohmann::json& r) {
                r["reason"] = "recycle";
                r["age_s"] = age;
            });
            if (!removed) oldest = f.mtime.tv_sec;
            ++removed;
        } catch (const Error&) {
            continue;
        }
        info = space();
    }
    if (removed)
        alerts_.raise(alert::Recycled,
                      fmt::format("deleted the {} oldest recording(s) (the oldest {} s old) to keep {} bytes free; now {} free",
                                  removed, now - oldest, want_free, info.free));
    return removed > 0;
}

}  // namespace nvrfs
