#include "base/caller.hpp"

#include "base/io.hpp"

#include <cerrno>
#include <fcntl.h>
#include <fmt/format.h>
#include <pwd.h>
#include <time.h>
#include <unistd.h>

namespace nvrfs {

namespace {

std::string lookup_user(uid_t uid) {
    char buf[4096];
    passwd pw {}, *res = nullptr;
    if (::getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res) return res->pw_name;
    return std::to_string(uid);
}

}  // namespace

std::string UserNames::of(uid_t uid) {
    timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    {
        std::lock_guard lk(mu_);
        if (auto it = names_.find(uid); it != names_.end() && it->second.until > now.tv_sec) return it->second.name;
    }
    std::string name = lookup_user(uid);  // outside the lock: NSS may be slow
    std::lock_guard lk(mu_);
    names_[uid] = Entry{name, now.tv_sec + 60};
    return name;
}

Caller Caller::of(uid_t uid, gid_t gid, pid_t pid, UserNames* names) {
    Caller c;
    c.uid = uid;
    c.gid = gid;
    c.pid = pid;
    c.user = names ? names->of(uid) : lookup_user(uid);
    c.comm = "?";
    if (pid > 0) {
        UniqueFd fd(::open(fmt::format("/proc/{}/comm", pid).c_str(), O_RDONLY | O_CLOEXEC));
        char name[64];
        // One read: the kernel hands the whole name (at most 16 bytes) at
        // once, and every create and unlink asks.
        ssize_t n = -1;
        if (fd) do n = ::pread(fd.get(), name, sizeof name - 1, 0); while (n < 0 && errno == EINTR);
        if (n > 0) {
            while (n > 0 && (name[n - 1] == '\n' || name[n - 1] == '\0')) --n;
            c.comm.assign(name, static_cast<size_t>(n));
        }
    }
    return c;
}

Caller Caller::daemon() {
    Caller c = of(::getuid(), ::getgid(), ::getpid());
    c.comm = "nvrfsd";
    return c;
}

std::string rfc3339_now() {
    timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    tm t {};
    ::localtime_r(&ts.tv_sec, &t);
    const long off = t.tm_gmtoff / 60;
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}{:02}:{:02}", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                       t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000, off < 0 ? '-' : '+', std::abs(off) / 60,
                       std::abs(off) % 60);
}

}  // namespace nvrfs
