#include "store/recovery.hpp"
#include "base/big_endian.hpp"

#include "base/error.hpp"
#include "base/io.hpp"
#include "base/member_path.hpp"

#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

namespace nvrfs {
namespace {

constexpr char kRecoveryMagic[8] = {'N', 'V', 'R', 'F', 'S', 'R', 'E', 'C'};

Bytes aad(const Uuid& set) {
    Bytes a(sizeof kRecoveryMagic + set.size());
    std::memcpy(a.data(), kRecoveryMagic, sizeof kRecoveryMagic);
    std::memcpy(a.data() + sizeof kRecoveryMagic, set.data(), set.size());
    return a;
}


}  // namespace

RecoveryWrap RecoveryWrap::make(const SecretKey& master, std::string_view passphrase, const Uuid& set, uint32_t iterations) {
    if (iterations < kRecoveryMinIterations || iterations > kRecoveryMaxIterations)
        throw Error(EINVAL, "", fmt::format("recovery key: {} PBKDF2 iterations is outside {}..{}", iterations, kRecoveryMinIterations,
                                            kRecoveryMaxIterations));
    RecoveryWrap w;
    w.iterations = iterations;
    random_bytes(w.salt);
    random_bytes(w.nonce);
    const SecretKey k = pbkdf2_sha256(passphrase, ByteView(w.salt.data(), w.salt.size()), iterations);
    const Bytes a = aad(set);
    gcm_seal(k, w.nonce.data(), ByteView(a.data(), a.size()), master.bytes(), w.wrapped.data(), w.tag.data());
    return w;
}

SecretKey RecoveryWrap::unwrap(std::string_view passphrase, const Uuid& set, const std::string& where) const {
    const SecretKey k = pbkdf2_sha256(passphrase, ByteView(salt.data(), salt.size()), iterations);
    const Bytes a = aad(set);
    std::array<uint8_t, 32> m{};
    if (!gcm_open(k, nonce.data(), ByteView(a.data(), a.size()), ByteView(wrapped.data(), wrapped.size()), tag.data(), m.data()))
        throw Error(EKEYREJECTED, where, fmt::format("{}: the recovery passphrase does not open this set's recovery key "
                                                     "(wrong passphrase, or the record was altered)", where));
    SecretKey out(ByteView(m.data(), m.size()));
    std::memset(m.data(), 0, m.size());
    return out;
}

std::array<uint8_t, kRecoverySize> RecoveryWrap::encode() const {
    std::array<uint8_t, kRecoverySize> b{};
    uint8_t* p = b.data();
    std::memcpy(p, kRecoveryMagic, 8);
    put32(p + 8, 1);
    put32(p + 12, iterations);
    std::memcpy(p + 16, salt.data(), 16);
    std::memcpy(p + 32, nonce.data(), kGcmNonce);
    std::memcpy(p + 32 + kGcmNonce, wrapped.data(), 32);
    std::memcpy(p + 64 + kGcmNonce, tag.data(), kGcmTag);
    return b;
}

RecoveryWrap RecoveryWrap::decode(ByteView b, const std::string& where) {
    if (b.size() != kRecoverySize || std::memcmp(b.data(), kRecoveryMagic, 8) != 0 || get32(b.data() + 8) != 1)
        throw Error(EINVAL, where, fmt::format("{}: not an nvrfs recovery record", where));
    RecoveryWrap w;
    w.iterations = get32(b.data() + 12);
    if (w.iterations < kRecoveryMinIterations || w.iterations > kRecoveryMaxIterations)
        throw Error(EINVAL, where, fmt::format("{}: {} PBKDF2 iterations is outside {}..{}", where, w.iterations, kRecoveryMinIterations,
                                               kRecoveryMaxIterations));
    std::memcpy(w.salt.data(), b.data() + 16, 16);
    std::memcpy(w.nonce.data(), b.data() + 32, kGcmNonce);
    std::memcpy(w.wrapped.data(), b.data() + 32 + kGcmNonce, 32);
    std::memcpy(w.tag.data(), b.data() + 64 + kGcmNonce, kGcmTag);
    return w;
}

std::optional<RecoveryWrap> read_recovery(int dirfd, const std::string& member_path) {
    std::string text;
    try {
        text = read_file_at(dirfd, kRecoveryPath, kRecoverySize);
    } catch (const Error& e) {
        if (e.code() == ENOENT) return std::nullopt;
        throw;
    }
    return RecoveryWrap::decode(as_bytes(text), member_path + "/" + kRecoveryPath);
}

void write_recovery(int dirfd, const RecoveryWrap& w) {
    const auto b = w.encode();
    ::mkdirat(dirfd, kMetaDir, 0700);
    write_file_atomic_at(dirfd, kRecoveryPath, b.data(), b.size(), 0600);
}

bool remove_recovery(int dirfd) {
    const int r = member_path::unlink(dirfd, kRecoveryPath);
    if (r < 0 && r != -ENOENT) throw_errno(-r, kRecoveryPath, "cannot remove the recovery key");
    return r == 0;
}

SecretKey master_by_recovery(const std::vector<std::string>& members, std::string_view passphrase) {
    for (const auto& path : members) {
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd) continue;
        const auto w = read_recovery(fd.get(), path);
        if (!w) continue;
        const Superblock sb = read_superblock(fd.get(), path);
        SecretKey m = w->unwrap(passphrase, sb.set_uuid, path + "/" + kRecoveryPath);
        if (!sb.mac_ok(KeySet::derive(m))) throw Error(EBADMSG, path, path + ": the recovery key is not this set's");
        return m;
    }
    throw Error(ENOENT, "", "no member holds a recovery key (nvrctl key recovery create makes one while the host key works)");
}

}  // namespace nvrfs
