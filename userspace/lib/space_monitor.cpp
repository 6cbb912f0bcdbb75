#include "space_monitor.hpp"

#include "alerts.hpp"
#include "audit_log.hpp"
#include "error.hpp"
#include "volume.hpp"

#include <algorithm>
#include <ctime>
#include <fmt/format.h>

namespace nvrfs {

SpaceMonitor::SpaceMonitor(Volume& vol, Alerts& alerts, AuditLog& log, MinFree min_free, bool recycle,
                           std::chrono::seconds interval)
    : vol_(vol), alerts_(alerts), log_(log), min_free_(min_free), recycle_(recycle), interval_(interval) {
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
            const auto wait = interval_;
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

void SpaceMonitor::reconfigure(MinFree min_free, bool recycle, std::chrono::seconds interval) {
    {
        std::lock_guard lk(mu_);
        min_free_ = min_free;
        recycle_ = recycle;
        interval_ = interval;
    }
    cv_.notify_all();
}

SpaceInfo SpaceMonitor::space() const {
    MinFree mf;
    {
        std::lock_guard lk(mu_);
        mf = min_free_;
    }
    const struct statvfs s = vol_.statfs();
    SpaceInfo i;
    i.total = static_cast<uint64_t>(s.f_blocks) * s.f_frsize;
    i.free = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
    i.threshold = mf.percent ? static_cast<uint64_t>(static_cast<double>(i.total) * mf.value / 100.0)
                             : static_cast<uint64_t>(mf.value);
    return i;
}

void SpaceMonitor::check_once() {
    MirrorSet& set = vol_.mirror();
    for (size_t i : set.healthy_members())
        if (!set.alive(i)) set.fail(i, ENODEV, "health check: member directory removed or superblock missing");
    log_.sync();

    SpaceInfo info = space();
    if (info.free < info.threshold) {
        if (!low_) {
            low_ = true;
            alerts_.raise(alert::SpaceLow, fmt::format("free space {} bytes is below the configured minimum {} bytes (of {})",
                                                       info.free, info.threshold, info.total));
        }
        bool recycle;
        {
            std::lock_guard lk(mu_);
            recycle = recycle_;
        }
        if (recycle) recycle_oldest(info);
    } else if (low_) {
        low_ = false;
        alerts_.raise(alert::SpaceRecovered, fmt::format("free space {} bytes is above the configured minimum {} bytes",
                                                         info.free, info.threshold));
    }
}

void SpaceMonitor::recycle_oldest(SpaceInfo info) {
    struct Rec {
        time_t mtime;
        std::string path;
    };
    std::vector<Rec> files;
    std::vector<std::string> dirs = {"/"};
    while (!dirs.empty()) {
        const std::string d = dirs.back();
        dirs.pop_back();
        for (const auto& n : vol_.readdir(d)) {
            const std::string p = d == "/" ? "/" + n : d + "/" + n;
            const struct stat st = vol_.getattr(p, nullptr);
            if (S_ISDIR(st.st_mode)) dirs.push_back(p);
            else if (S_ISREG(st.st_mode)) files.push_back({st.st_mtime, p});
        }
    }
    std::sort(files.begin(), files.end(), [](const Rec& a, const Rec& b) { return a.mtime < b.mtime; });
    // Files touched in the last two intervals are probably still being recorded.
    std::chrono::seconds interval;
    {
        std::lock_guard lk(mu_);
        interval = interval_;
    }
    const time_t busy = ::time(nullptr) - 2 * static_cast<time_t>(interval.count());
    const Caller self = Caller::daemon();
    uint64_t removed = 0;
    for (const auto& f : files) {
        if (info.free >= info.threshold || f.mtime >= busy) break;
        try {
            vol_.unlink(f.path, self);
            ++removed;
        } catch (const Error&) {
            continue;
        }
        info = space();
    }
    if (removed)
        alerts_.raise(alert::Recycled, fmt::format("deleted the {} oldest recording(s) to keep {} bytes free; now {} free",
                                                   removed, info.threshold, info.free));
}

}  // namespace nvrfs
