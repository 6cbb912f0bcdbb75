// daemon_archive.cpp — the mounted set's archive tier (admin/archive.hpp):
// made at mount when `archive` is configured, and nvrctl's archive requests.
#include "daemon.hpp"

#include "admin/archive.hpp"
#include "base/error.hpp"

#include <fmt/format.h>

namespace nvrfs {

// Bad settings (no endpoint, credentials unreadable or too open) refuse the
// mount here, before anything is mounted; a store that refuses or does not
// answer does not (ArchiveUnreachable, and recording goes on).
void Daemon::start_archive() {
    const auto as = ArchiveSettings::from(cfg);
    if (!as) return;
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
