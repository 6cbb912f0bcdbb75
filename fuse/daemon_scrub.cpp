// daemon_scrub.cpp — scrub (chunks on every member, and the namespace
// against the audit log's ledger), and the ledger's records of files as
// they are (after a crash, and for sets made before the ledger).
#include "daemon.hpp"

#include "base/error.hpp"
#include "base/plain_path.hpp"
#include "base/test_delay.hpp"
#include "audit/ledger.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unordered_set>

namespace nvrfs {

// t32 widens the window between the namespace check's view of the log and
// its look at the members with this.
static const int kNamespaceDelayMs = env_ms("NVRFS_NAMESPACE_DELAY_MS");
// ... and between the walk (which lists every directory) and the files' checks.
static const int kWalkDelayMs = env_ms("NVRFS_WALK_DELAY_MS");

void Daemon::start_scrub(bool repair) {
    std::lock_guard lk(scrub_mu);
    if (scrub.running) throw Error(EBUSY, "", "a scrub is already running");
    if (scrub_thread.joinable()) scrub_thread.join();
    scrub = ScrubState{};
    scrub.running = true;
    scrub.repair = repair;
    scrub.started = rfc3339_now();
    scrub_thread = std::thread([this, repair] { run_scrub(repair); });
}

// The scrub thread: walk, check every file's chunks and its place, then the
// namespace as a whole; after a crash, record what the crash left unrecorded.
void Daemon::run_scrub(bool repair) {
    try {
        // What the audit log says the namespace holds (ledger.hpp).
        const Ledger ledger = this->ledger->snapshot();
        std::vector<std::string> suspects, rebase;
        std::unordered_set<std::string> visited;
        const auto files = scrub_walk(repair);
        test_delay(kWalkDelayMs);
        for (const auto& f : files) {
            if (stopping) break;
            Volume::ScrubStats one;
            try {
                vol->scrub_file(f, repair, one);
                visited.insert(f);
                judge_place(f, ledger, suspects, rebase);
            } catch (const Error& e) {
                one.unrepairable++;
                visited.insert(f);
            }
            std::lock_guard lk(scrub_mu);
            scrub.stats += one;
        }
        if (!stopping) check_namespace(suspects, visited);
        // After a crash the ledger catches up with what the crash left
        // unrecorded, so the next clean scrub holds every file to it.
        for (const auto& f : rebase) {
            if (stopping || vol->is_open(f)) continue;
            record_baseline(f, Caller::daemon(), "after an unclean shutdown");
        }
    } catch (const std::exception& e) {
        alerts->raise("ScrubFailed", e.what());
    }
    Volume::ScrubStats total;
    {
        std::lock_guard lk(scrub_mu);
        scrub.running = false;
        scrub.finished = rfc3339_now();
        total = scrub.stats;
    }
    alerts->raise("ScrubFinished", fmt::format("{} files, {} chunk copies checked: {} bad, {} repaired, {} without a good copy, {} resynced{}",
                                               total.files, total.chunks, total.bad, total.repaired, total.unrepairable, total.resynced,
                                               total.skipped ? fmt::format("; {} could not be checked (first: {})", total.skipped,
                                                                           total.first_skipped)
                                                             : ""));
}

// Every directory (checked for foreign names on the way) and the files in
// it; whatever cannot be checked is counted and named, and the walk goes on:
// a scrub never reports success over it.
std::vector<std::string> Daemon::scrub_walk(bool repair) {
    std::vector<std::string> dirs = {"/"}, files;
    auto skip = [&](const std::string& p, const Error& e) {
        std::lock_guard lk(scrub_mu);
        if (!scrub.stats.skipped++) scrub.stats.first_skipped = fmt::format("{}: {}", p, e.what());
    };
    while (!dirs.empty()) {
        const std::string d = dirs.back();
        dirs.pop_back();
        std::vector<std::string> names;
        try {
            Volume::ScrubStats one;
            vol->scrub_dir(d, repair, one);
            names = vol->readdir(d);
            std::lock_guard lk(scrub_mu);
            scrub.stats += one;
        } catch (const Error& e) {
            skip(d, e);
            continue;
        }
        for (const auto& n : names) {
            const std::string p = child_path(d, n);
            try {
                const struct stat st = vol->getattr(p, nullptr);
                if (S_ISDIR(st.st_mode)) {
                    dirs.push_back(p);
                    continue;
                }
                files.push_back(p);  // files, and symlinks, fifos and sockets (stored files too)
                std::lock_guard lk(scrub_mu);
                scrub.total_bytes += stored_size(kFormatVersion, static_cast<uint64_t>(st.st_size)) * set->healthy_count();
            } catch (const Error& e) {
                if (e.code() != ENOENT) skip(p, e);  // ENOENT: deleted while we walk
            }
        }
    }
    return files;
}

// One file against the ledger: a mismatch is a suspect (looked at again at
// the end); after a crash, what grew past its record or was never recorded
// is rebased.
void Daemon::judge_place(const std::string& f, const Ledger& ledger, std::vector<std::string>& suspects,
                         std::vector<std::string>& rebase) {
    const auto it = ledger.files().find(f);
    if (it == ledger.files().end()) {
        if (unclean_) rebase.push_back(f);  // its create record was lost in the crash
        return;
    }
    const auto facts = vol->facts(f);
    if (!facts) return;
    const auto v = compare(it->second, facts->id, facts->size, facts->tail, unclean_);
    if (v == LedgerVerdict::Swapped || v == LedgerVerdict::Rewound) suspects.push_back(f);
    // Grown past its last record in the crash: recorded as it is now.
    else if (unclean_ && it->second.closed && v == LedgerVerdict::Unchecked) rebase.push_back(f);
}

std::optional<std::string> Daemon::misplaced(const std::string& path, const std::optional<LedgerEntry>& e,
                                             const Volume::Facts& now, bool settled) const {
    // After a crash a create's record may be what was lost.
    if (!e)
        return unclean_ ? std::nullopt
                        : std::optional<std::string>(fmt::format("{}: the audit log never recorded a file here: moved in on the "
                                                                 "disks from another place (a swapped directory?)", path));
    const auto v = compare(*e, now.id, settled ? now.size : e->size, settled ? now.tail : e->tail, unclean_);
    if (v == LedgerVerdict::Swapped)
        return fmt::format("{}: holds another file's contents (file id {}, the audit log recorded {} there at #{}): "
                           "recordings or directories were swapped or replaced on the disks",
                           path, now.id, e->id, e->seq);
    if (v == LedgerVerdict::Rewound)
        return fmt::format("{}: is not the file the audit log recorded at its last close (#{}: {} bytes; now {} "
                           "bytes): an older copy was put back on the disks",
                           path, e->seq, e->size, now.size);
    return std::nullopt;
}

// The files the walk found against the audit log read again now (it has
// grown while the scrub ran: what was written, renamed or recycled meanwhile
// is not a finding). Whatever still differs is tamper evidence.
void Daemon::check_namespace(const std::vector<std::string>& suspects, const std::unordered_set<std::string>& visited) {
    vol->settle_records();  // a create the walk met has its record in the log by now
    const Ledger now = ledger->snapshot();
    test_delay(kNamespaceDelayMs);
    Volume::ScrubStats found;
    auto judge = [&](const std::string& f, const std::optional<LedgerEntry>& e) {
        if (vol->is_open(f)) return;
        const auto facts = vol->facts(f);
        if (!facts) return;  // gone meanwhile
        if (const auto why = misplaced(f, e, *facts, true)) {
            found.mismatched++;
            alerts->raise(alert::TamperDetected, *why, f);
        }
    };
    for (const auto& f : suspects)
        if (const auto it = now.files().find(f); it != now.files().end()) judge(f, it->second);
    // Files the log never saw created there (a directory swapped in from elsewhere).
    for (const auto& f : visited)
        if (!now.files().count(f)) judge(f, std::nullopt);
    // Logged files the walk did not meet and no member holds now. A
    // recorder may have removed or renamed one since `now` was taken (its
    // own segments, created after the walk passed): only a name whose entry
    // the log still holds unchanged once those changes are recorded is gone
    // outside nvrfs.
    std::vector<std::pair<std::string, uint64_t>> gone;
    for (const auto& [p, e] : now.files()) {
        if (visited.count(p)) continue;
        try {
            vol->getattr(p, nullptr);
            continue;  // there (created after the walk passed, or its directory could not be listed)
        } catch (const Error& err) {
            if (err.code() != ENOENT) continue;
        }
        gone.emplace_back(p, e.seq);
    }
    if (!gone.empty()) {
        vol->settle_records();
        const Ledger later = ledger->snapshot();
        for (const auto& [p, seq] : gone) {
            const auto it = later.files().find(p);
            if (it == later.files().end() || it->second.seq != seq) continue;
            found.missing++;
            alerts->raise(alert::TamperDetected,
                          fmt::format("{}: deleted outside nvrfs: the audit log has it (last record #{}) and no unlink, and "
                                      "no member holds it", p, seq),
                          p);
        }
    }
    found.bad = found.missing + found.mismatched;
    found.unrepairable = found.bad;
    std::lock_guard lk(scrub_mu);
    scrub.stats += found;
}

// A "baseline" audit record: the file's contents as they are now become its
// ledger entry. False when the file is gone.
bool Daemon::record_baseline(const std::string& path, const Caller& who, const std::string& reason) {
    return vol->record_contents("baseline", who, path, [&](nlohmann::json& r) {
        if (!reason.empty()) r["reason"] = reason;
    });
}

// Sets made before the ledger have files whose records carry no id: their
// contents are recorded now, as they are (trust on first use: whatever was
// done to them before this is not seen). Files the log already binds are
// left alone.
nlohmann::json Daemon::ledger_baseline(const Caller& who) {
    const Ledger ledger = this->ledger->snapshot();
    uint64_t recorded = 0, already = 0;
    std::vector<std::string> dirs = {"/"};
    while (!dirs.empty()) {
        const std::string d = dirs.back();
        dirs.pop_back();
        for (const auto& n : vol->readdir(d)) {
            const std::string p = child_path(d, n);
            try {
                if (S_ISDIR(vol->getattr(p, nullptr).st_mode)) {
                    dirs.push_back(p);
                    continue;
                }
                const auto it = ledger.files().find(p);
                if (it != ledger.files().end() && !it->second.id.empty()) {
                    ++already;
                    continue;
                }
                recorded += record_baseline(p, who, "");
            } catch (const Error&) {
                // gone meanwhile, or unreadable: scrub reports those
            }
        }
    }
    return {{"recorded", recorded}, {"already", already}};
}

}  // namespace nvrfs
