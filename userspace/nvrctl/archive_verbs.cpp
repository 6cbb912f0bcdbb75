// nvrctl archive status|now|recall: the archive tier (admin/archive.hpp),
// through the running daemon.
#include "cli.hpp"

#include <chrono>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <thread>

namespace nvrfs::cli {
namespace {

using json = nlohmann::json;

void print_status(const json& a) {
    fmt::print("archive: {} at {} ({})\n", a.value("target", ""), a.value("endpoint", ""),
               a.value("reachable", false) ? "reachable" : "UNREACHABLE");
    fmt::print("  local:    {} file(s), {}\n", a.value("files_local", uint64_t(0)), human_bytes(a.value("bytes_local", uint64_t(0))));
    fmt::print("  archived: {} file(s), {}\n", a.value("files_archived", uint64_t(0)), human_bytes(a.value("bytes_archived", uint64_t(0))));
    fmt::print("  moved since mount: {} file(s), {}; last rate {}/s; waiting: {} file(s), {} deletion(s)\n", a.value("moved_files", uint64_t(0)),
               human_bytes(a.value("moved_bytes", uint64_t(0))), human_bytes(a.value("rate_bytes_per_s", uint64_t(0))),
               a.value("queue", uint64_t(0)), a.value("deletions_pending", uint64_t(0)));
    fmt::print("  expired (archive_retention): {} file(s); objects deleted: {}\n", a.value("expired_files", uint64_t(0)),
               a.value("deleted_objects", uint64_t(0)));
    fmt::print("  last pass: {}\n", a.value("last_pass", "").empty() ? "none yet" : a.value("last_pass", ""));
    if (!a.value("last_error", "").empty())
        fmt::print("  last error ({}): {}\n", a.value("last_error_at", ""), printable(a.value("last_error", "")));
}

}  // namespace

int cmd_archive(const Args& args) {
    Common c = parse(args, {}, {"--no-wait"});
    if (c.rest.empty()) throw UsageError("archive needs a subcommand: status, now or recall PATH");
    const std::string sub = c.rest[0];
    const Config cfg = load_config(c);
    if (sub == "status") {
        if (c.rest.size() != 1) throw UsageError("archive status takes no arguments");
        const json a = require_daemon(cfg, {{"cmd", "archive-status"}});
        if (c.json) fmt::print("{}\n", a.dump(2));
        else print_status(a);
        return a.value("reachable", false) ? 0 : 1;
    }
    if (sub == "now") {
        if (c.rest.size() != 1) throw UsageError("archive now takes no arguments");
        const uint64_t pass = require_daemon(cfg, {{"cmd", "archive-now"}}).value("pass", uint64_t(0));
        if (c.has("--no-wait")) {
            fmt::print("archive pass {} requested\n", pass);
            return 0;
        }
        json a;
        for (;;) {
            a = require_daemon(cfg, {{"cmd", "archive-status"}});
            if (a.value("passes", uint64_t(0)) >= pass) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        if (c.json) fmt::print("{}\n", a.dump(2));
        else print_status(a);
        return a.value("reachable", false) && a.value("queue", uint64_t(0)) == 0 ? 0 : 1;
    }
    if (sub == "recall") {
        if (c.rest.size() != 2) throw UsageError("archive recall takes one PATH (inside the mount, or from its root)");
        std::string path = c.rest[1];
        const std::string mnt = require_daemon(cfg, {{"cmd", "status"}}).value("mountpoint", "");
        if (!mnt.empty() && path.rfind(mnt + "/", 0) == 0) path = path.substr(mnt.size());
        const bool done = require_daemon(cfg, {{"cmd", "archive-recall"}, {"path", path}}).value("recalled", false);
        fmt::print("{}: {}\n", path, done ? "recalled onto the members" : "was not archived");
        return 0;
    }
    throw UsageError("unknown archive subcommand '" + sub + "'");
}

}  // namespace nvrfs::cli
