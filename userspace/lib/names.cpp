#include "names.hpp"

#include "error.hpp"

#include <cerrno>

namespace nvrfs {

std::string NameCodec::encrypt(const DirIv& iv, std::string_view name) const {
    if (name.size() > kMaxNameLen)
        throw Error(ENAMETOOLONG, std::string(name), "file name longer than 175 bytes");
    return base64url(siv_seal(key_, iv, as_bytes(name)));
}

std::optional<std::string> NameCodec::decrypt(const DirIv& iv, std::string_view stored) const {
    auto raw = unbase64url(stored);
    if (!raw) return std::nullopt;
    auto plain = siv_open(key_, iv, *raw);
    if (!plain || plain->empty()) return std::nullopt;
    std::string s(plain->begin(), plain->end());
    if (s.find('/') != std::string::npos || s.find('\0') != std::string::npos || s == "." || s == "..") return std::nullopt;
    return s;
}

}  // namespace nvrfs
