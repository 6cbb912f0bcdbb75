// caller.hpp — who did something, and when, in the words an auditor reads.
#pragma once
#include <string>
#include <sys/types.h>

namespace nvrfs {

struct Caller {
    uid_t uid = 0;
    gid_t gid = 0;
    pid_t pid = 0;
    std::string user;  // from the password database, or the number
    std::string comm;  // /proc/<pid>/comm, or "?" when the process is gone

    static Caller of(uid_t uid, gid_t gid, pid_t pid);
    static Caller daemon();  // events nvrfsd raises itself
};

// RFC 3339 local time with milliseconds and zone: 2026-11-25T21:29:07.123+08:00
std::string rfc3339_now();

}  // namespace nvrfs
