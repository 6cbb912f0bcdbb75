// plain_path.hpp — paths as the mount shows them ("/", "/cam1/a.mp4"), for
// the walkers and for everything that follows a rename.
#pragma once
#include <optional>
#include <string>

namespace nvrfs {

// `name` inside directory `dir`.
inline std::string child_path(const std::string& dir, const std::string& name) {
    return dir == "/" ? "/" + name : dir + "/" + name;
}

// Where `p` is after `from` was renamed to `to`: `p` is `from` itself or lies
// below it; nullopt when the rename does not touch it.
inline std::optional<std::string> rebased(const std::string& p, const std::string& from, const std::string& to) {
    if (p == from) return to;
    if (p.size() > from.size() && p.compare(0, from.size(), from) == 0 && p[from.size()] == '/') return to + p.substr(from.size());
    return std::nullopt;
}

}  // namespace nvrfs
