// error.hpp — the one error type of nvrfs.
//
// Every failure inside the library is an Error: the errno the FUSE edge returns
// to the kernel, the path it concerns, and a sentence for an administrator.
// Code that must keep going (the mirror fan-out) works with raw -errno values
// instead and turns them into an Error only where a decision is made.
#pragma once
#include <stdexcept>
#include <string>

namespace nvrfs {

class Error : public std::runtime_error {
public:
    Error(int err, std::string path, const std::string& what);
    int code() const noexcept { return err_; }
    const std::string& path() const noexcept { return path_; }

private:
    int err_;
    std::string path_;
};

// Throws Error(err, path, "<what>: <path>: <strerror>").
[[noreturn]] void throw_errno(int err, const std::string& path, const std::string& what);

// "EIO", "ENOSPC", ... (the symbolic name, for logs that people grep).
std::string errno_name(int err);

}  // namespace nvrfs
