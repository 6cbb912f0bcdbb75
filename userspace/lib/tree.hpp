// tree.hpp — whole-directory operations on stored (encrypted) trees.
//
// Used to resync a stale member from a current one: the stored bytes of a
// mirror are identical on every member, so a resync is a raw copy that needs
// no key and re-encrypts nothing.
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
// Copy the contents of src into dst (which exists), keeping modes, owners and
// times; skip(rel) leaves a relative path out. Returns bytes copied.
uint64_t copy_tree_at(int src, int dst, const std::function<bool(const std::string&)>& skip, const std::string& where);

}  // namespace nvrfs
