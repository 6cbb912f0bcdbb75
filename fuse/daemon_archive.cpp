// daemon_archive.cpp — the mounted set's archive tier (admin/archive.hpp):
// made at mount when `archive` is configured, and nvrctl's archive requests.
#include "daemon.hpp"

#include "admin/archive.hpp"
#include "base/error.hpp"
#include "base/io.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace nvrfs {

namespace {
constexpr const char* kArchiveTarget = ".nvrfs/archive-target";  // where this set's archived files are
}  // namespace

// Bad settings (no endpoint, credentials unreadable or too open) refuse the
// mount here, before anything is mounted; a store that refuses or does not
// answer does not (ArchiveUnreachable, and recording goes on). The members
// remember which bucket and prefix hold their archived files: an `archive`
// changed to another would make every archived file unreadable, so it is
// refused (the endpoint may change: the same bucket behind a new address).
void Daemon::start_archive() {
    const auto as = ArchiveSettings::from(cfg);
    // What each writable member holds (a rebuilt member may hold nothing yet).
    std::string recorded;
    std::vector<std::pair<size_t, std::string>> held;
    const auto healthy = set->healthy_members();
    for (size_t i : set->writable_members()) {
        std::string t;
        try {
            t = read_file_at(set->member(i).dirfd.get(), kArchiveTarget, 4096);
        } catch (const Error&) {
        }
        if (!t.empty() && t.back() == '\n') t.pop_back();
        if (recorded.empty() && std::find(healthy.begin(), healthy.end(), i) != healthy.end()) recorded = t;  // not a rebuilding one's
        held.emplace_back(i, std::move(t));
    }
    if (!as) {
        if (!recorded.empty())
            alerts->raise("ArchiveUnreachable", fmt::format("archive is not configured, but this set's archived files are in "
                                                            "{}: reads of them fail until archive = {} is set again",
                                                            recorded, recorded));
        return;
    }
    if (!recorded.empty() && recorded != as->target())
        throw Error(EINVAL, "archive", fmt::format("archive = {}, but this set's archived files are in {}: with another "
                                                   "target they could not be read. Set archive = {} (the endpoint may change), "
                                                   "or copy the objects there first", as->target(), recorded, recorded));
    const std::string line = as->target() + "\n";
    for (const auto& [i, t] : held)
        if (t != as->target()) write_file_atomic_at(set->member(i).dirfd.get(), kArchiveTarget, line.data(), line.size(), 0600);
    archive = std::make_unique<ArchiveTier>(*vol, *alerts, *log, *as, uuid_str(set->set_uuid()), cfg.text("state_dir"));
    vol->set_archive(archive.get());
}

nlohmann::json Daemon::handle_archive(const std::string& cmd, const nlohmann::json& req) {
    if (!archive) throw Error(ENOTSUP, "", "no archive tier is configured (archive = s3://BUCKET/PREFIX in nvrfs.conf)");
    if (cmd == "archive-status") return archive->status();
    if (cmd == "archive-now") return {{"pass", archive->run_now()}};
    if (cmd == "archive-recall") {
        const std::string path = req.value("path", "");
        if (path.empty() || path[0] != '/') throw Error(EINVAL, path, "recall needs a path inside the mount, from its root");
        return {{"recalled", vol->recall(path, peer_of(req))}};
    }
    throw Error(EINVAL, "", fmt::format("unknown request '{}'", cmd));
}

}  // namespace nvrfs
