#include "store/names.hpp"

#include "base/error.hpp"

#include <cerrno>

namespace nvrfs {

std::string member_name(const std::string& encrypted) {
    if (encrypted.size() <= kMaxMemberName) return encrypted;
    return std::string(kLongPrefix) + base64url(sha256(as_bytes(encrypted)));
}

bool is_long_name(std::string_view m) {
    // kLongPrefix, then 43 base64url characters (32 bytes).
    return m.size() == kLongPrefix.size() + 43 && m.substr(0, kLongPrefix.size()) == kLongPrefix &&
           m.find('.', kLongPrefix.size()) == std::string_view::npos;
}

bool is_long_side(std::string_view m) {
    return m.size() > kLongSuffix.size() && m.substr(m.size() - kLongSuffix.size()) == kLongSuffix &&
           is_long_name(m.substr(0, m.size() - kLongSuffix.size()));
}

std::string NameCodec::encrypt(const DirIv& iv, std::string_view name) const {
    if (name.size() > kMaxNameLen)
        throw Error(ENAMETOOLONG, std::string(name), "file name longer than 255 bytes");
    std::string k(reinterpret_cast<const char*>(iv.data()), iv.size());
    k += name;
    {
        std::lock_guard lk(cache_mu_);
        if (auto it = cache_.find(k); it != cache_.end()) return it->second;
    }
    std::string enc = base64url(siv_seal(key_, iv, as_bytes(name)));
    std::lock_guard lk(cache_mu_);
    if (cache_.size() >= kCacheEntries) cache_.clear();
    cache_.emplace(std::move(k), enc);
    return enc;
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
