// daemon.hpp — everything one mounted nvrfs set owns, in dependency order.
//
// Members are assembled and checked before anything is mounted, so bad input
// (foreign member, wrong host key, missing key, bad config) fails with a clear
// message and nothing written. Threads (space monitor, rebuilder, scrubber,
// control socket) start only after nvrfsd has forked into the background.
// Destruction order is the reverse of creation.
#pragma once
#include "audit/alerts.hpp"
#include "audit/audit_log.hpp"
#include "admin/config.hpp"
#include "admin/control.hpp"
#include "audit/host_anchor.hpp"
#include "audit/ledger.hpp"
#include "base/caller.hpp"
#include "store/mirror_set.hpp"
#include "admin/rebuild.hpp"
#include "admin/space_monitor.hpp"
#include "store/volume.hpp"

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>

namespace nvrfs {

class ArchiveTier;

// Who asked over the control socket (peer credentials, control.cpp).
Caller peer_of(const nlohmann::json& req);

struct ScrubState {
    bool running = false;
    bool repair = false;
    std::string started, finished;
    uint64_t total_bytes = 0;
    Volume::ScrubStats stats;
};

struct Daemon {
    Config cfg;
    std::string config_file;  // where `reload` reads from ("" when flags only)
    std::string mountpoint;
    std::unique_ptr<MirrorSet> set;
    std::unique_ptr<AuditLog> log;
    std::unique_ptr<Alerts> alerts;
    std::unique_ptr<Volume> vol;
    std::unique_ptr<ArchiveTier> archive;  // when `archive` is configured
    std::unique_ptr<SpaceMonitor> monitor;
    std::unique_ptr<Rebuilder> rebuilder;
    std::unique_ptr<ControlServer> control;
    std::unique_ptr<HostAnchor> anchor;
    // What the audit log says stands where, kept current (ledger.hpp).
    std::unique_ptr<LiveLedger> ledger;
    std::mutex scrub_mu;
    ScrubState scrub;
    std::thread scrub_thread;
    std::atomic<bool> stopping{false};
    std::atomic<bool> fuse_initialized{false};  // set by the FUSE init handler
    // Write-only opens bypass the FUSE page cache (ops.cpp, open_mode): set
    // by the init handler when the kernel keeps other opens' cached pages
    // coherent with such writes.
    std::atomic<bool> direct_writes{false};
    UserNames user_names;  // for the audit records of FUSE requests

    // Assemble the set and open the audit log. Throws Error on bad input.
    static std::unique_ptr<MirrorSet> assemble_set(const Config& cfg, const std::vector<std::string>& paths, std::vector<std::string>& notes);
    static std::unique_ptr<Daemon> prepare(const Config& cfg, const std::string& config_file, const std::string& mountpoint);
    // Start the background threads (after daemonizing) and resume rebuilds.
    void start_background();
    // Stop background work and mark the members clean.
    void shutdown();
    ~Daemon();

private:
    bool unclean_ = false;
    // The host anchor is rewritten every check_interval while mounted.
    std::thread anchor_thread_;
    std::mutex anchor_mu_;
    std::condition_variable anchor_cv_;
    AnchorState anchored_;  // what the file holds now; guarded by anchor_mu_
    bool anchor_failed_ = false;  // guarded by anchor_mu_
    time_t anchored_at_ = 0;      // when the file was last written; guarded by anchor_mu_
    void update_anchor();
    // The set's TPM NV counter (store/tpm_seal.hpp), when the host key is sealed.
    std::optional<uint32_t> tpm_counter_index_;
    uint64_t tpm_counter_ = 0;  // guarded by anchor_mu_ after prepare()
    void anchor_milestone();
    void write_metrics();
    // The ledger's checkpoint on the host (host_anchor.hpp): read at mount,
    // written at unmount and after every kCheckpointRecords records, so a
    // mount after a crash replays at most that many more.
    static constexpr uint64_t kCheckpointRecords = 100000;
    uint64_t checkpoint_seq_ = 0;  // the anchor thread's, after prepare()
    LogPosition ledger_checkpoint(std::vector<std::string>& notes);
    void build_ledger(std::vector<std::string>& notes);
    void save_ledger();
    bool metrics_failed_ = false;  // written by the anchor thread only
    void stop_anchor_thread();
    std::string export_key_;  // the export key's fingerprint (fixed for the set)
    bool record_baseline(const std::string& path, const Caller& who, const std::string& reason);
    void check_anchor(std::vector<std::string>& notes, std::string& accepted);
    // Why the file found at `path` is not what the ledger holds there.
    std::optional<std::string> misplaced(const std::string& path, const std::optional<LedgerEntry>& e,
                                         const Volume::Facts& now, bool settled) const;
    void check_namespace(const std::vector<std::string>& suspects, const std::unordered_set<std::string>& visited);
    nlohmann::json handle(const nlohmann::json& req);
    nlohmann::json handle_membership(const std::string& cmd, const nlohmann::json& req);
    nlohmann::json handle_archive(const std::string& cmd, const nlohmann::json& req);
    void start_archive();
    nlohmann::json status();
    nlohmann::json ledger_baseline(const Caller& who);
    void promote_spare();
    void start_scrub(bool repair);
    void run_scrub(bool repair);
    std::vector<std::string> scrub_walk(bool repair);
    void judge_place(const std::string& f, const Ledger& ledger, std::vector<std::string>& suspects, std::vector<std::string>& rebase);
    size_t member_index(const std::string& path);
    std::optional<MemberRole> take_back(const std::string& path);
};

}  // namespace nvrfs
