// config.hpp — one typed option table for nvrfsd flags, nvrfs.conf and nvrctl.
//
// The file format is `key = value` lines, `#` comments, list keys repeated
// (`member = /srv/disk1`). A command-line flag `--min-free 10%` overrides the
// key `min_free`. Every value is checked against its type when it is set, so a
// bad config is refused with the file, line and reason before anything runs.
#pragma once
#include "store/keys.hpp"
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nvrfs {

enum class OptKind { Path, PathList, Size, Bool, Seconds, Text, Duration };

struct OptionSpec {
    const char* key;
    OptKind kind;
    const char* def;  // default as text ("" = none)
    const char* help;
};

const std::vector<OptionSpec>& option_table();
const OptionSpec* find_option(const std::string& key);  // accepts "min-free" too

inline constexpr const char* kDefaultConfig = "/etc/nvrfs/nvrfs.conf";

struct MinFree {
    bool percent = true;
    double value = 0;  // percent of capacity, or bytes
    // In bytes, for a set of `total` bytes.
    uint64_t bytes(uint64_t total) const {
        return percent ? static_cast<uint64_t>(static_cast<double>(total) * value / 100.0) : static_cast<uint64_t>(value);
    }
};

class Config {
public:
    // Throws Error(EINVAL) naming file:line on a bad key or value.
    void load_file(const std::string& path);
    // Set from text; throws Error(EINVAL) on a value of the wrong type. A
    // list option (member, spare) gains the value unless it holds it.
    void set(const std::string& key, const std::string& value);
    void clear(const std::string& key);
    void remove(const std::string& key, const std::string& value);  // one entry of a list
    // Write the config atomically to `path`.
    void save(const std::string& path) const;

    std::string text(const std::string& key) const;  // value or default
    std::vector<std::string> list(const std::string& key) const;
    bool boolean(const std::string& key) const;
    uint64_t seconds(const std::string& key) const;
    MinFree min_free() const;
    MinFree fraction(const std::string& key) const;  // min_free-like options
    uint64_t duration(const std::string& key) const;  // a Duration option in seconds
    uint64_t size(const std::string& key) const;  // a Size option in bytes
    // The whole config in file form (for `nvrctl init` and `config get`).
    std::string render() const;

private:
    std::map<std::string, std::vector<std::string>> values_;
};

// "10%", "500M", "2G", "1048576" -> MinFree; nullopt when malformed.
std::optional<MinFree> parse_min_free(const std::string& s);
std::optional<uint64_t> parse_size(const std::string& s);
// "7d", "12h", "30m", "90s", "3600" -> seconds; nullopt when malformed.
std::optional<uint64_t> parse_duration(const std::string& s);
// Size options that also take a percentage of the set (min_free, archive_when_free_below).
inline bool is_fraction(const std::string& key) { return key == "min_free" || key == "archive_when_free_below"; }

// The configured host key: the key file, or the key sealed in the TPM
// (host_key ending in ".tpm", through tpm_tcti).
SecretKey host_key(const Config& cfg);

}  // namespace nvrfs
