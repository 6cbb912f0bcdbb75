#include "audit/ledger.hpp"

#include "base/plain_path.hpp"

#include <nlohmann/json.hpp>

namespace nvrfs {

void Ledger::apply(const nlohmann::json& r) {
    if (!r.is_object()) return;
    last_seq_ = r.value("seq", last_seq_);
    const std::string ev = r.value("event", ""), path = r.value("path", "");
    // A failed operation changes nothing, but a record that states the
    // file's contents (a write session that met a full disk still closed
    // with a size and tail) is a fact whatever the result.
    if (r.value("result", "") != "ok" && !r.contains("tail")) return;
    if (path.empty() || path[0] != '/') return;
    const uint64_t seq = r.value("seq", uint64_t(0));
    auto str = [&](const char* k) { return r.contains(k) && r[k].is_string() ? r[k].get<std::string>() : std::string(); };
    if (ev == "create" || ev == "symlink" || ev == "mknod") {
        LedgerEntry e;
        e.id = str("id");
        e.seq = seq;
        files_[path] = e;
    } else if (ev == "write" || ev == "truncate" || ev == "baseline") {
        if (r.value("orphaned", false)) return;  // a file no name leads to any more (rmdir below)
        LedgerEntry& e = files_[path];  // a write to a file the log saw created before the ledger
        if (!str("id").empty()) e.id = str("id");
        if (r.contains("size") && r["size"].is_number_integer() && r["size"].get<int64_t>() >= 0 && !str("tail").empty()) {
            e.size = r["size"].get<uint64_t>();
            e.tail = str("tail");
            e.closed = true;
        }
        e.seq = seq;
    } else if (ev == "rename") {
        if (r.contains("to") && r["to"].is_string()) move(path, r["to"].get<std::string>(), r.value("exchange", false));
    } else if (ev == "unlink") {
        if (r.contains("kept_open_as") && r["kept_open_as"].is_string()) move(path, r["kept_open_as"].get<std::string>(), false);
        else files_.erase(path);
    } else if (ev == "rmdir") {
        // What a removed directory still held were files unlinked while
        // open: they leave the namespace with it (the daemon keeps them
        // outside it until they close), and a directory made and renamed
        // later under the same name does not carry them.
        take(path);
    }
}

// Removes `a` and every path below it; keyed by the part below `a` ("" for
// `a` itself).
std::map<std::string, LedgerEntry> Ledger::take(const std::string& a) {
    std::map<std::string, LedgerEntry> out;
    for (auto it = files_.begin(); it != files_.end();) {
        if (auto rest = rebased(it->first, a, "")) {
            out.emplace(std::move(*rest), std::move(it->second));
            it = files_.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

// A file or a directory (every path below it) moves; an exchange swaps both.
void Ledger::move(const std::string& from, const std::string& to, bool exchange) {
    if (from == to) return;
    auto a = take(from);
    auto b = exchange ? take(to) : (take(to), std::map<std::string, LedgerEntry>{});  // a rename replaces the target
    for (auto& [rest, e] : a) files_[to + rest] = std::move(e);
    for (auto& [rest, e] : b) files_[from + rest] = std::move(e);
}

nlohmann::json Ledger::to_json() const {
    nlohmann::json files = nlohmann::json::object();
    for (const auto& [p, e] : files_) files[p] = {e.id, e.closed, e.size, e.tail, e.seq};
    return {{"last_seq", last_seq_}, {"files", std::move(files)}};
}

std::optional<Ledger> Ledger::from_json(const nlohmann::json& j) {
    try {
        Ledger l;
        l.last_seq_ = j.at("last_seq").get<uint64_t>();
        for (const auto& [p, v] : j.at("files").items()) {
            if (p.empty() || p[0] != '/' || !v.is_array() || v.size() != 5) return std::nullopt;
            l.files_[p] = LedgerEntry{v[0].get<std::string>(), v[1].get<bool>(), v[2].get<uint64_t>(), v[3].get<std::string>(),
                                      v[4].get<uint64_t>()};
        }
        return l;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

LedgerVerdict compare(const LedgerEntry& e, const std::string& id, uint64_t size, const std::string& tail, bool grew_ok) {
    if (e.id.empty()) return LedgerVerdict::Unchecked;
    if (e.id != id) return LedgerVerdict::Swapped;
    if (!e.closed) return LedgerVerdict::Match;
    if (size == e.size && tail == e.tail) return LedgerVerdict::Match;
    if (grew_ok && size >= e.size) return LedgerVerdict::Unchecked;
    return LedgerVerdict::Rewound;
}

void LiveLedger::apply(const nlohmann::json& rec, uint64_t end) {
    std::lock_guard lk(mu_);
    ledger_.apply(rec);
    if (rec.contains("seq") && rec["seq"].is_number_unsigned() && rec.contains("mac") && rec["mac"].is_string())
        mark_ = {end, rec["seq"].get<uint64_t>(), rec["mac"].get<std::string>()};
}

}  // namespace nvrfs
