#include "admin/metrics.hpp"

#include "base/error.hpp"
#include "base/io.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <map>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace nvrfs {
namespace {

std::string escape(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\', out += c;
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

// One metric family: HELP, TYPE, then its samples.
class Family {
public:
    Family(std::string& out, const char* name, const char* type, const char* help) : out_(out), name_(name) {
        out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    Family& sample(double v, const std::map<std::string, std::string>& labels = {}) {
        out_ += name_;
        if (!labels.empty()) {
            out_ += '{';
            bool first = true;
            for (const auto& [k, l] : labels) {
                out_ += fmt::format("{}{}=\"{}\"", first ? "" : ",", k, escape(l));
                first = false;
            }
            out_ += '}';
        }
        out_ += fmt::format(" {}\n", v);
        return *this;
    }

private:
    std::string& out_;
    const char* name_;
};

double num(const nlohmann::json& j, const char* key) {
    if (!j.is_object() || !j.contains(key)) return 0;
    const auto& v = j[key];
    if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
    return v.is_number() ? v.get<double>() : 0;
}

}  // namespace

std::string prometheus_metrics(const nlohmann::json& st) {
    std::string out;
    const std::string set = st.value("set", "");
    Family(out, "nvrfs_set_info", "gauge", "The mounted set (always 1).").sample(1, {{"set", set}, {"mountpoint", st.value("mountpoint", "")}});
    {
        Family f(out, "nvrfs_set_state", "gauge", "1 for the set's current state, 0 for the others.");
        for (const char* s : {"clean", "degraded", "rebuilding"}) f.sample(st.value("state", "") == s, {{"state", s}});
    }
    Family(out, "nvrfs_set_raid_disks", "gauge", "Data members the set is made of.").sample(num(st, "raid_disks"));

    const auto members = st.value("members", nlohmann::json::array());
    {
        Family f(out, "nvrfs_member_state", "gauge", "1 for each member's current state and role.");
        for (const auto& m : members) f.sample(1, {{"member", m.value("path", "")}, {"state", m.value("state", "")}, {"role", m.value("role", "")}});
    }
    struct PerMember {
        const char *name, *type, *help, *key;
    };
    for (const PerMember& p : {PerMember{"nvrfs_member_errors_total", "counter", "I/O errors met on the member.", "errors"},
                               PerMember{"nvrfs_member_repaired_total", "counter", "Chunk copies rewritten on the member from an authentic copy.", "repaired"},
                               PerMember{"nvrfs_member_free_bytes", "gauge", "Bytes free for nvrfs on the member's file system.", "free_bytes"},
                               PerMember{"nvrfs_member_size_bytes", "gauge", "Size of the member's file system.", "total_bytes"}}) {
        Family f(out, p.name, p.type, p.help);
        for (const auto& m : members) f.sample(num(m, p.key), {{"member", m.value("path", "")}});
    }

    const auto rb = st.value("rebuild", nlohmann::json::object());
    Family(out, "nvrfs_rebuild_running", "gauge", "1 while a member is being rebuilt.").sample(!rb.empty());
    Family(out, "nvrfs_rebuild_done_bytes", "gauge", "Bytes copied by the running rebuild.").sample(num(rb, "done_bytes"));
    Family(out, "nvrfs_rebuild_total_bytes", "gauge", "Bytes the running rebuild copies in all.").sample(num(rb, "total_bytes"));

    const auto sc = st.value("scrub", nlohmann::json::object());
    Family(out, "nvrfs_scrub_running", "gauge", "1 while a scrub runs.").sample(num(sc, "running"));
    Family(out, "nvrfs_scrub_progress_ratio", "gauge", "How far the running or last scrub got (0 to 1).").sample(num(sc, "percent") / 100);
    {
        Family f(out, "nvrfs_scrub_findings", "gauge", "What the running or last scrub found, by kind.");
        for (const char* k : {"bad", "repaired", "unrepairable", "resynced", "skipped", "missing", "mismatched"}) f.sample(num(sc, k), {{"kind", k}});
    }

    const auto io = st.value("io", nlohmann::json::object());
    Family(out, "nvrfs_written_bytes_total", "counter", "Plaintext bytes written through the mount.").sample(num(io, "bytes_written"));
    Family(out, "nvrfs_read_bytes_total", "counter", "Plaintext bytes read through the mount.").sample(num(io, "bytes_read"));
    Family(out, "nvrfs_chunks_authenticated_total", "counter", "Chunks that authenticated on read.").sample(num(io, "chunks_authenticated"));
    Family(out, "nvrfs_chunk_copies_failed_total", "counter", "Stored chunk copies that failed authentication on read.").sample(num(io, "chunk_copies_failed"));

    {
        std::map<std::string, double> by_kind = {{"TamperDetected", 0}, {"MemberFailed", 0}, {"SpaceLow", 0}, {"RollbackDetected", 0}};
        for (const auto& a : st.value("alerts", nlohmann::json::array())) by_kind[a.value("alert", "")] += 1;
        Family f(out, "nvrfs_alerts_unacknowledged", "gauge", "Alerts not yet acknowledged (nvrctl alerts --ack), by kind.");
        for (const auto& [k, n] : by_kind) f.sample(n, {{"kind", k}});
    }
    Family(out, "nvrfs_audit_records_total", "counter", "Records in the audit log.").sample(num(st, "audit_records"));

    const auto sp = st.value("space", nlohmann::json::object());
    Family(out, "nvrfs_space_free_bytes", "gauge", "Bytes free on the set.").sample(num(sp, "free_bytes"));
    Family(out, "nvrfs_space_size_bytes", "gauge", "Size of the set.").sample(num(sp, "total_bytes"));
    Family(out, "nvrfs_space_threshold_bytes", "gauge", "Free space below which SpaceLow is raised and recycling starts.").sample(num(sp, "threshold_bytes"));
    Family(out, "nvrfs_space_low", "gauge", "1 while free space is below the threshold.").sample(num(sp, "low"));

    const auto an = st.value("anchor", nlohmann::json::object());
    Family(out, "nvrfs_anchor_age_seconds", "gauge", "Seconds since this host last recorded the set's state (-1: never).").sample(num(an, "age_s"));
    Family(out, "nvrfs_anchor_failing", "gauge", "1 while the host's record of the set cannot be written.").sample(num(an, "failing"));
    if (st.contains("archive")) {  // the archive tier, when configured
        const auto& ar = st["archive"];
        Family(out, "nvrfs_archive_reachable", "gauge", "1 while the archive store answers and takes the credentials.").sample(num(ar, "reachable"));
        Family(out, "nvrfs_archive_files", "gauge", "Regular files by where their chunks are, as of the last archive pass.")
            .sample(num(ar, "files_local"), {{"where", "local"}})
            .sample(num(ar, "files_archived"), {{"where", "archived"}});
        Family(out, "nvrfs_archive_bytes", "gauge", "Stored bytes by where they are, as of the last archive pass.")
            .sample(num(ar, "bytes_local"), {{"where", "local"}})
            .sample(num(ar, "bytes_archived"), {{"where", "archived"}});
        Family(out, "nvrfs_archive_moved_bytes_total", "counter", "Stored bytes moved to the archive since mount.").sample(num(ar, "moved_bytes"));
        Family(out, "nvrfs_archive_waiting_files", "gauge", "Files due to move that the last pass left (unreachable, errors).").sample(num(ar, "queue"));
    }
    return out;
}

void write_textfile(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) throw_errno(errno, tmp, "cannot write metrics");
    if (const int r = pwrite_full(fd.get(), text.data(), text.size(), 0); r < 0) throw_errno(-r, tmp, "cannot write metrics");
    fd.reset();
    if (::rename(tmp.c_str(), path.c_str()) < 0) throw_errno(errno, path, "cannot write metrics");
}

}  // namespace nvrfs
