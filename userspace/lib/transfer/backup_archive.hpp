// backup_archive.hpp — encrypted, verifiable backups of recordings (5.2.9.1/5.2.9.2).
//
// An archive is a 64-byte header and a sequence of records. Keys come from a
// passphrase: KEK = PBKDF2-HMAC-SHA-256(passphrase, salt, >= 600 000
// iterations); header key and data key = HKDF-SHA-256(KEK, purpose). Every
// record is AES-256-GCM with associated data = archive id ‖ record index ‖
// final flag, so a record moved, dropped or cut off is detected; only the last
// record carries final = 1. The plaintext inside is a stream of entries
// ('F' file header + bytes, then 'M' manifest with the SHA-256 of every file).
// All algorithms are FIPS 140-2 Annex A / SP 800-132 approved.
//
// The archive is written as NAME.partial and renamed to NAME only after its
// final record is on disk; an interrupted backup (full device) is renamed
// NAME.incomplete. So a name without a suffix is always a complete archive.
// Byte layout: docs/backup-format.md.
#pragma once
#include "base/crypto.hpp"
#include "base/io.hpp"

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nvrfs {

constexpr uint32_t kBackupMinIterations = 600000;
// A few seconds of PBKDF2 here; an archive asking for more is refused unread.
constexpr uint32_t kBackupMaxIterations = 10000000;

struct BackupEntry {
    std::string path;
    uint64_t size = 0;
    int64_t mtime = 0;
    uint32_t mode = 0644;
    std::string sha256;
};

using Progress = std::function<void(uint64_t done)>;

class BackupWriter {
public:
    // Creates `path`.partial. `meta` goes into the manifest (set, camera, range...).
    BackupWriter(std::string path, std::string_view passphrase, uint32_t iterations, nlohmann::json meta);
    ~BackupWriter();
    BackupWriter(const BackupWriter&) = delete;
    BackupWriter& operator=(const BackupWriter&) = delete;

    // Streams one file into the archive under `name` (relative, '/'-separated).
    void add_file(const std::string& src, const std::string& name, const Progress& progress = {});
    // Seals the manifest as the final record, fsyncs and renames to `path`.
    const std::vector<BackupEntry>& finish();
    // After a failure: keeps what was written as `path`.incomplete and returns that name.
    std::string abandon();
    uint64_t stored_bytes() const { return written_; }

private:
    void put(const void* data, size_t len);
    void flush_record(bool final);
    std::string path_;
    UniqueFd fd_;
    SecretKey data_key_;
    std::array<uint8_t, 16> id_{};
    uint64_t index_ = 0, written_ = 0;
    Bytes buf_;
    nlohmann::json meta_;
    std::vector<BackupEntry> entries_;
    bool done_ = false;
};

struct BackupContents {
    nlohmann::json manifest;
    std::vector<BackupEntry> files;
    uint64_t bytes = 0;
};

// Authenticates the whole archive and checks every file against the manifest.
// With a non-empty `restore_to`, also writes the files below that directory
// (each file appears only after the whole archive verified; nothing is
// written outside that directory or through a link in it; modes lose set-id
// and sticky bits). Throws Error with a clear message: wrong passphrase,
// altered record, truncated or incomplete archive, malformed entry, hash
// mismatch, unsafe path.
BackupContents read_backup(const std::string& path, std::string_view passphrase, const std::string& restore_to = "",
                           const Progress& progress = {});

}  // namespace nvrfs
