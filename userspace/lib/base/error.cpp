#include "base/error.hpp"

#include <cstring>
#include <fmt/format.h>

namespace nvrfs {

Error::Error(int err, std::string path, const std::string& what)
    : std::runtime_error(what), err_(err ? err : EIO), path_(std::move(path)) {}

void throw_errno(int err, const std::string& path, const std::string& what) {
    if (path.empty())
        throw Error(err, path, fmt::format("{}: {}", what, std::strerror(err)));
    throw Error(err, path, fmt::format("{}: {}: {}", what, path, std::strerror(err)));
}

std::string errno_name(int err) {
    const char* n = strerrorname_np(err);
    return n ? n : fmt::format("errno {}", err);
}

}  // namespace nvrfs
