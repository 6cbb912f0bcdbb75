// caller.hpp — who did something, and when, in the words an auditor reads.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <sys/types.h>

namespace nvrfs {

// User names by uid, each looked up again after a minute (as nscd would
// serve them): the lookup reads the password database, and a recorder
// creates and removes a file every few seconds per camera. Thread-safe.
class UserNames {
public:
    std::string of(uid_t uid);

private:
    struct Entry {
        std::string name;
        int64_t until = 0;  // CLOCK_MONOTONIC seconds
    };
    std::mutex mu_;
    std::unordered_map<uid_t, Entry> names_;
};

struct Caller {
    uid_t uid = 0;
    gid_t gid = 0;
    pid_t pid = 0;
    std::string user;  // from the password database, or the number
    std::string comm;  // /proc/<pid>/comm, or "?" when the process is gone

    // `names`: where user names are remembered (none: looked up each time).
    static Caller of(uid_t uid, gid_t gid, pid_t pid, UserNames* names = nullptr);
    static Caller daemon();  // events nvrfsd raises itself
};

// RFC 3339 local time with milliseconds and zone: 2026-11-25T21:29:07.123+08:00
std::string rfc3339_now();

}  // namespace nvrfs
