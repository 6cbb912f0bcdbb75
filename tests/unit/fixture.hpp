// The volume test fixture: a two-member set on temporary directories, with
// its audit log, alerts and volume, and helpers to write, read and damage it.
#pragma once
#include "audit/alerts.hpp"
#include "audit/audit_log.hpp"
#include "base/error.hpp"
#include "helpers.hpp"
#include "store/mirror_set.hpp"
#include "admin/rebuild.hpp"
#include "store/volume.hpp"

#include <optional>
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace nvrfs::test {

// All regular files below dir, relative path -> contents.
inline std::map<std::string, std::string> tree_of(const std::string& dir, const std::string& rel = "") {
    std::map<std::string, std::string> out;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir((dir + "/" + rel).c_str()), ::closedir);
    while (dirent* e = d ? ::readdir(d.get()) : nullptr) {
        std::string n = e->d_name;
        if (n == "." || n == ".." || n == "superblock") continue;
        const std::string r = rel.empty() ? n : rel + "/" + n;
        struct stat st {};
        ::stat((dir + "/" + r).c_str(), &st);
        if (S_ISDIR(st.st_mode)) out.merge(tree_of(dir, r));
        else out[r] = slurp(dir + "/" + r);
    }
    return out;
}

struct Fixture {
    std::string root;
    std::vector<std::string> members;
    SecretKey host = SecretKey::random(32);
    std::unique_ptr<MirrorSet> set;
    std::unique_ptr<AuditLog> log;
    std::unique_ptr<Alerts> alerts;
    std::unique_ptr<Volume> vol;
    std::vector<std::string> notes;
    Caller who = Caller::of(0, 0, ::getpid());

    // Members in a new directory below `under` (a file system a test chose).
    explicit Fixture(const std::string& under = "/tmp") {
        std::string tmpl = under + "/nvrfs-unit-XXXXXX";
        root = ::mkdtemp(tmpl.data());
        members = {root + "/m1", root + "/m2"};
        create_set(members, host);
        mount();
    }
    ~Fixture() {
        unmount();
        std::system(("rm -rf " + root).c_str());
    }
    void mount() {
        notes.clear();
        set = MirrorSet::assemble(members, host, {}, &notes);
        log = std::make_unique<AuditLog>(*set, &notes);
        alerts = std::make_unique<Alerts>(*log, "", "test");
        vol = std::make_unique<Volume>(*set, *log, *alerts);
        set->set_fail_handler([this](size_t i, int, const std::string& c) { alerts->raise(alert::MemberFailed, set->member(i).path + " " + c); });
    }
    void unmount() {
        vol.reset();
        alerts.reset();
        log.reset();
        if (set) set->bump_events(false);
        set.reset();
    }
    std::string write_file(const std::string& path, const std::string& data) {
        auto h = vol->create(path, 0644, O_CREAT | O_WRONLY | O_TRUNC, who);
        vol->write(*h, reinterpret_cast<const uint8_t*>(data.data()), data.size(), 0);
        vol->release(std::move(h));
        return data;
    }
    std::string read_file(const std::string& path) {
        auto h = vol->open(path, O_RDONLY, who);
        std::string out(static_cast<size_t>(h->file->size.load()), '\0');
        size_t n = 0;
        try {
            n = vol->read(*h, reinterpret_cast<uint8_t*>(out.data()), out.size(), 0);
        } catch (...) {
            vol->release(std::move(h));  // as FUSE does: release follows every open
            throw;
        }
        vol->release(std::move(h));
        out.resize(n);
        return out;
    }
    // The single stored file on member i below the root (plus its dir).
    std::string stored_file(size_t i) {
        for (auto& [rel, data] : tree_of(members[i]))
            if (rel.find(".nvrfs") == std::string::npos) return members[i] + "/" + rel;
        return "";
    }
    // Run the online rebuild of every member that needs one, and of the
    // spare `spare` when given (as nvrfsd does at member add), to the end.
    void rebuild(std::optional<size_t> spare = std::nullopt) {
        Rebuilder r(*vol, *set, *log, *alerts, 0);
        for (size_t i : set->in_state({MemberState::Rebuilding})) r.start(i);
        if (spare) r.start(*spare);
        for (int k = 0; k < 500 && r.busy(); ++k) ::usleep(10000);
        REQUIRE_FALSE(r.busy());
    }
    // Was an alert of `kind` raised whose text contains `text`?
    bool alerted(const std::string& kind, const std::string& text) {
        for (auto& a : alerts->recent())
            if (a.kind == kind && a.detail.find(text) != std::string::npos) return true;
        return false;
    }
    std::vector<nlohmann::json> records(size_t i, VerifyResult* vr = nullptr) {
        UniqueFd fd(::open((members[i] + "/" + kAuditLogPath).c_str(), O_RDONLY));
        std::vector<nlohmann::json> out;
        VerifyResult v = read_audit_log(fd.get(), set->keys(), set->set_uuid(), [&](nlohmann::json&& j) { out.push_back(std::move(j)); });
        if (vr) *vr = v;
        return out;
    }
};

inline std::string make_data(std::mt19937_64& rng, size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
}

inline void flip(const std::string& path, off_t off) {
    int fd = ::open(path.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    char c;
    REQUIRE(::pread(fd, &c, 1, off) == 1);
    c ^= 0x5a;
    REQUIRE(::pwrite(fd, &c, 1, off) == 1);
    ::close(fd);
}

}  // namespace nvrfs::test
