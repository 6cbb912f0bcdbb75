#include "audit/host_anchor.hpp"

#include "base/caller.hpp"
#include "base/error.hpp"
#include "base/io.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

namespace nvrfs {
namespace {

// The state directory, made if missing (root-only).
UniqueFd state_dir(const std::string& dir, bool create) {
    if (create && ::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) throw_errno(errno, dir, "cannot create state directory");
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw_errno(errno, dir, "cannot open state directory");
    return fd;
}

std::string mac_hex(const SecretKey& key, const nlohmann::json& body) {
    const std::string s = body.dump();  // nlohmann sorts keys: one serialisation
    return hex(hmac_sha256(key, as_bytes(s)));
}

}  // namespace

HostAnchor::HostAnchor(std::string state_dir, const Uuid& set, const SecretKey& key)
    : dir_(std::move(state_dir)), key_(key) {
    name_ = uuid_str(set) + ".anchor";
    accept_name_ = uuid_str(set) + ".accept-rollback";
    ledger_name_ = uuid_str(set) + ".ledger";
    path_ = dir_ + "/" + name_;
}

// A file of the state directory that carries its own MAC ("mac", over the
// rest): written whole; read back only when it verifies. read_signed():
// nullopt with `why` empty when there is none, with `why` set ("is not
// valid", "fails its MAC ...") when it is damaged; I/O errors are thrown.
void HostAnchor::write_signed(const std::string& name, nlohmann::json body) const {
    body["mac"] = mac_hex(key_, body);
    const std::string text = body.dump() + "\n";
    write_file_atomic_at(state_dir(dir_, true).get(), name, text.data(), text.size(), 0600);
}

std::optional<nlohmann::json> HostAnchor::read_signed(const std::string& name, size_t max_len, std::string& why) const {
    std::string text;
    try {
        text = read_file_at(state_dir(dir_, false).get(), name, max_len);
    } catch (const Error& e) {
        if (e.code() == ENOENT) return std::nullopt;
        throw;
    }
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object() || !j.contains("mac") || !j["mac"].is_string()) {
        why = "is not valid";
        return std::nullopt;
    }
    const std::string mac = j["mac"].get<std::string>();
    j.erase("mac");
    if (!equal_ct(as_bytes(mac), as_bytes(mac_hex(key_, j)))) {
        why = "fails its MAC (edited, or another set's)";
        return std::nullopt;
    }
    return j;
}

std::optional<AnchorState> HostAnchor::load() const {
    auto bad = [&](const std::string& why) {
        return AnchorRefusal(EBADMSG, path_, fmt::format("{}: the host's record of this set {}; nvrfs will not guess which copy "
                                                 "is current (restore the file, or remove it to trust the members as they are)",
                                                 path_, why));
    };
    std::string why;
    const auto j = read_signed(name_, 4096, why);
    if (!why.empty()) throw bad(why);
    if (!j) return std::nullopt;
    try {
        AnchorState s;
        s.events = j->at("events").get<uint64_t>();
        s.audit_seq = j->at("audit_seq").get<uint64_t>();
        s.audit_mac = j->at("audit_mac").get<std::string>();
        s.audit_end = j->at("audit_end").get<uint64_t>();
        s.time = j->at("time").get<std::string>();
        s.tpm_counter = j->value("tpm_counter", uint64_t(0));
        return s;
    } catch (const nlohmann::json::exception&) {
        throw bad("lacks a field");
    }
}

void HostAnchor::store(AnchorState s) const {
    if (s.time.empty()) s.time = rfc3339_now();
    nlohmann::json j = {{"events", s.events}, {"audit_seq", s.audit_seq}, {"audit_mac", s.audit_mac},
                        {"audit_end", s.audit_end}, {"time", s.time}, {"format", 1}};
    if (s.tpm_counter) j["tpm_counter"] = s.tpm_counter;
    write_signed(name_, std::move(j));
}

void HostAnchor::store_checkpoint(nlohmann::json body) const {
    body["format"] = 1;
    write_signed(ledger_name_, std::move(body));
}

std::optional<nlohmann::json> HostAnchor::load_checkpoint(std::string* why) const {
    std::string damaged;
    try {
        auto j = read_signed(ledger_name_, size_t(4) << 30, damaged);
        if (!damaged.empty() && why) *why = dir_ + "/" + ledger_name_ + " " + damaged;
        return j;
    } catch (const Error& e) {
        if (why) *why = e.what();
        return std::nullopt;
    }
}

void HostAnchor::request_acceptance(const std::string& who) const {
    const std::string text = fmt::format("{} {}\n", rfc3339_now(), who);
    write_file_atomic_at(state_dir(dir_, true).get(), accept_name_, text.data(), text.size(), 0600);
}

std::optional<std::string> HostAnchor::acceptance() const {
    try {
        std::string t = read_file_at(state_dir(dir_, false).get(), accept_name_, 1024);
        while (!t.empty() && t.back() == '\n') t.pop_back();
        return t;
    } catch (const Error&) {
        return std::nullopt;
    }
}

void HostAnchor::clear_acceptance() const { ::unlink((dir_ + "/" + accept_name_).c_str()); }

namespace {

void add(AnchorCheck& c, const std::string& why) {
    c.rollback = true;
    c.reason += (c.reason.empty() ? "" : "; ") + why;
}

void check_log(AnchorCheck& c, const AnchorState& a, uint64_t log_seq, const std::optional<std::string>& anchored_mac) {
    if (log_seq < a.audit_seq)
        add(c, fmt::format("the audit log ends at record #{}, this host saw #{} on {}: records #{}..#{} are missing", log_seq,
                           a.audit_seq, a.time, log_seq + 1, a.audit_seq));
    else if (a.audit_seq > 0 && anchored_mac != a.audit_mac)
        add(c, fmt::format("audit log record #{} is not the one this host saw on {} (the log was replaced)", a.audit_seq, a.time));
}

}  // namespace

AnchorCheck compare_with_anchor(const AnchorState& a, uint64_t events, uint64_t log_seq,
                                const std::function<std::optional<std::pair<uint64_t, std::string>>(uint64_t)>& record_at) {
    AnchorCheck c;
    if (events < a.events)
        add(c, fmt::format("the members' event counter is {}, this host saw {} on {} (an older copy of every member)", events,
                           a.events, a.time));
    std::optional<std::string> mac;
    if (log_seq >= a.audit_seq && a.audit_seq > 0)
        if (const auto r = record_at(a.audit_end); r && r->first == a.audit_seq) mac = r->second;
    check_log(c, a, log_seq, mac);
    return c;
}

AnchorCheck compare_log_with_anchor(const AnchorState& a, uint64_t log_seq, const std::optional<std::string>& anchored_mac) {
    AnchorCheck c;
    check_log(c, a, log_seq, anchored_mac);
    return c;
}

}  // namespace nvrfs
