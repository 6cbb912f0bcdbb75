// tree.hpp — whole-directory operations on stored (encrypted) trees.
//
// Used to empty a spare before its rebuild. Nothing here follows a link: every
// entry is handled by name within its parent's descriptor.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <sys/stat.h>

namespace nvrfs {

// Give fd the owner, mode and times in st (a stored file copied between members).
void copy_meta(int fd, const struct stat& st);

// Remove everything inside dirfd for which keep(name) is false (recursively).
void clear_dir_at(int dirfd, const std::function<bool(const std::string&)>& keep, const std::string& where);

}  // namespace nvrfs
