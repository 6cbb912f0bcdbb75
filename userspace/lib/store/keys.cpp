#include "store/keys.hpp"
#include "store/tpm_seal.hpp"

#include "base/error.hpp"
#include "base/io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace nvrfs {

SecretKey load_host_key(const std::string& path, const std::string& tcti) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        int e = errno;
        throw Error(e, path, fmt::format("cannot read host key {}: {} (create one with `nvrctl init`)", path, std::strerror(e)));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) throw_errno(errno, path, "cannot stat host key");
    if (!S_ISREG(st.st_mode)) throw Error(EINVAL, path, fmt::format("host key {} is not a regular file", path));
    if (st.st_uid != ::geteuid())
        throw Error(EACCES, path, fmt::format("host key {} is owned by uid {}, not by the user nvrfs runs as: refusing it", path, st.st_uid));
    if (st.st_mode & 077)
        throw Error(EACCES, path, fmt::format("host key {} is readable by others (mode {:o}); run chmod 600 {}", path, st.st_mode & 0777, path));
    if (is_sealed_key(path)) {
        std::string sealed(64 * 1024, '\0');
        const ssize_t got = pread_full(fd.get(), sealed.data(), sealed.size(), 0);
        if (got <= 0 || static_cast<size_t>(got) == sealed.size()) throw Error(EINVAL, path, fmt::format("{}: not a sealed nvrfs host key", path));
        sealed.resize(static_cast<size_t>(got));
        SecretKey k = tpm_unseal(tcti, sealed, path);
        if (k.size() != kHostKeyLen) throw Error(EINVAL, path, fmt::format("{}: the sealed host key is not {} bytes", path, kHostKeyLen));
        return k;
    }
    uint8_t buf[kHostKeyLen + 1];
    ssize_t n = pread_full(fd.get(), buf, sizeof buf, 0);
    if (n != static_cast<ssize_t>(kHostKeyLen))
        throw Error(EINVAL, path, fmt::format("host key {} is not a {}-byte key", path, kHostKeyLen));
    SecretKey k(ByteView(buf, kHostKeyLen));
    std::fill(std::begin(buf), std::end(buf), 0);
    return k;
}

SecretKey create_host_key(const std::string& path) {
    SecretKey k = SecretKey::random(kHostKeyLen);
    const auto slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) ::mkdir(path.substr(0, slash).c_str(), 0700);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) throw_errno(errno, path, "cannot create host key");
    if (int r = write_full(fd.get(), k.bytes().data(), k.size()); r < 0) throw_errno(-r, path, "cannot write host key");
    if (::fsync(fd.get()) < 0) throw_errno(errno, path, "cannot fsync host key");
    return k;
}

KeySet KeySet::derive(const SecretKey& master) {
    const ByteView none;
    return KeySet{
        hkdf_sha256(master, none, "nvrfs content v1"),
        hkdf_sha256(master, none, "nvrfs names siv v1", 64),
        hkdf_sha256(master, none, "nvrfs audit encryption v1"),
        hkdf_sha256(master, none, "nvrfs audit hmac chain v1"),
        hkdf_sha256(master, none, "nvrfs superblock mac v1"),
        hkdf_sha256(master, none, "nvrfs host anchor v1"),
        hkdf_sha256(master, none, "nvrfs export signing ed25519 v1"),
    };
}

}  // namespace nvrfs
