// cli.hpp — what every nvrctl verb shares: option parsing, the set's config,
// the control socket, and output helpers.
#pragma once
#include "audit/audit_log.hpp"
#include "admin/config.hpp"
#include "device/device.hpp"
#include "store/mirror_set.hpp"

#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace nvrfs::cli {

// A usage error: exit status 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using Args = std::vector<std::string>;

struct Common {
    std::string config_file;  // as given; "" = default
    bool json = false;
    std::vector<std::string> members;
    std::vector<std::string> rest;  // positional arguments
    std::map<std::string, std::string> opts;

    bool has(const std::string& o) const { return opts.count(o) > 0; }
    std::string config_path() const { return config_file.empty() ? kDefaultConfig : config_file; }
};

// Parses --config, --member, --host-key, --json plus the verb's own options
// (`value_opts` take a value, `flags` do not).
Common parse(const Args& args, const std::vector<std::string>& value_opts = {}, const std::vector<std::string>& flags = {});
// The set's config: the file (required unless --member is given), then flags.
Config load_config(const Common& c);
// Ask the running daemon; nullopt when none is running for this config.
std::optional<nlohmann::json> ask_daemon(const Config& cfg, const nlohmann::json& req);
// Ask the running daemon; a clear error when none is running.
nlohmann::json require_daemon(const Config& cfg, const nlohmann::json& req);
std::string human_bytes(uint64_t b);
// Text from a record (a file name, a user name, an alert's detail) made safe
// for a terminal: control characters, C1 controls and invalid UTF-8 bytes are
// shown as \xNN, so a name cannot fake a line of output or move the cursor.
std::string printable(std::string_view s);

// The audit log of the first complete, current member: each good record in
// order to `each` as it is read (never the whole log in memory: a recorder's
// log holds millions), and the verification result; nullopt when no member
// has one.
std::optional<VerifyResult> read_set_log(MirrorSet& set, const std::function<void(nlohmann::json&&)>& each,
                                         std::string* member = nullptr);

// ---- shared by the verbs that send recordings off the box (device_verbs.cpp)

// Into the set's audit log (and an alert when `alert` is set) through the
// daemon; syslog always. Returns the record as written (empty when the set
// is not mounted).
nlohmann::json report(const Config& cfg, nlohmann::json event, const std::string& alert = "", const std::string& detail = "");
// A --to target: a directory, or a block device that is allowed and scans
// clean, mounted nosuid,nodev,noexec while `mount` lives. Returns the directory.
std::string open_target(const Config& cfg, const std::string& to, bool quiet, std::unique_ptr<DeviceMount>& mount);
std::string read_passphrase(const Common& c);
time_t parse_time(const std::string& s, const char* what);
struct Recording {
    std::string src, name;  // path under the mount, path below it
    uint64_t size;
    time_t mtime;
};
// Regular files below root[/camera] modified in [since, until], sorted by name.
std::vector<Recording> select_recordings(const std::string& root, const std::string& camera, time_t since, time_t until);

int cmd_init(const Args&);
int cmd_status(const Args&);
int cmd_metrics(const Args&);
int cmd_key(const Args&);
// key_verbs.cpp: seal the configured host key in the TPM (also `init --tpm`).
void seal_host_key(Config& cfg, const std::string& cfg_path, const std::string& pcrs);
// key_verbs.cpp: `key recovery create` (also `init --recovery-passphrase-file`).
int recovery_create(const Common& c, const Config& cfg);
// `nvrctl VERB [SUB] --help` (help.cpp): false when there is no such verb.
bool print_help(const std::string& verb, const Args& args);
int cmd_member(const Args&);
int cmd_spare(const Args&);
int cmd_scrub(const Args&);
int cmd_archive(const Args&);
int cmd_set(const Args&);
int cmd_upgrade(const Args&);
int cmd_config(const Args&);
int cmd_log(const Args&);
int cmd_alerts(const Args&);
int cmd_device(const Args&);
int cmd_backup(const Args&);
int cmd_verify_install(const Args&);
int cmd_mask(const Args&);
int cmd_export(const Args&);

}  // namespace nvrfs::cli
