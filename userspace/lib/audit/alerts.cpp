#include "audit/alerts.hpp"

#include "audit/audit_log.hpp"

#include <nlohmann/json.hpp>
#include <spawn.h>
#include <sys/wait.h>
#include <syslog.h>
#include <thread>

extern char** environ;

namespace nvrfs {

Alerts::Alerts(AuditLog& log, std::string hook, std::string set_uuid)
    : log_(log), hook_(std::move(hook)), set_uuid_(std::move(set_uuid)) {}

void Alerts::raise(const std::string& kind, const std::string& detail, const std::string& path) {
    Alert a;
    {
        std::lock_guard lk(mu_);
        a = Alert{next_id_++, rfc3339_now(), kind, detail, path};
        recent_.push_back(a);
        if (recent_.size() > 256) recent_.pop_front();
    }
    auto rec = audit_record("alert", Caller::daemon(), path, 0);
    rec["time"] = a.time;
    rec["alert"] = kind;
    rec["detail"] = detail;
    log_.append(std::move(rec));
    const bool severe = kind == alert::TamperDetected || kind == alert::MemberFailed;
    ::syslog(LOG_DAEMON | (severe ? LOG_CRIT : LOG_WARNING), "nvrfs alert %s: %s", kind.c_str(), detail.c_str());
    run_hook(a);
}

bool Alerts::ack(uint64_t id, const std::string& by) {
    bool found = false;
    {
        std::lock_guard lk(mu_);
        for (auto& a : recent_)
            if (id == 0 || a.id == id) {
                found |= !a.acked || a.id == id;
                a.acked = true;
            }
    }
    if (found) {
        auto rec = audit_record("alert-ack", Caller::daemon(), "", 0);
        rec["alert_id"] = id;
        rec["detail"] = by;
        log_.append(std::move(rec));
    }
    return found;
}

void Alerts::set_hook(std::string hook) {
    std::lock_guard lk(mu_);
    hook_ = std::move(hook);
}

std::vector<Alert> Alerts::recent() const {
    std::lock_guard lk(mu_);
    return {recent_.begin(), recent_.end()};
}

void Alerts::run_hook(const Alert& a) const {
    std::string hook;
    {
        std::lock_guard lk(mu_);
        hook = hook_;
    }
    if (hook.empty()) return;
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    env.push_back("NVRFS_ALERT=" + a.kind);
    env.push_back("NVRFS_DETAIL=" + a.detail);
    env.push_back("NVRFS_PATH=" + a.path);
    env.push_back("NVRFS_TIME=" + a.time);
    env.push_back("NVRFS_SET=" + set_uuid_);
    std::vector<char*> envp;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    const char* argv[] = {"/bin/sh", "-c", hook.c_str(), nullptr};
    pid_t pid = 0;
    if (::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), envp.data()) != 0) {
        ::syslog(LOG_DAEMON | LOG_ERR, "nvrfs: cannot run alert hook %s", hook.c_str());
        return;
    }
    // Reap without blocking the caller.
    std::thread([pid] {
        int st = 0;
        ::waitpid(pid, &st, 0);
    }).detach();
}

}  // namespace nvrfs
