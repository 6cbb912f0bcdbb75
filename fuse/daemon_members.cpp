// daemon_members.cpp — membership at the administrator's word (nvrctl member
// and spare): fail, remove, add, replace, and the spare promoted when the set
// is degraded.
#include "daemon.hpp"

#include "base/error.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace nvrfs {

void Daemon::promote_spare() {
    if (!rebuilder || rebuilder->busy()) return;
    if (set->degraded()) {
        const auto spares = set->in_state({MemberState::Spare});
        if (!spares.empty()) rebuilder->start(spares.front());
    }
}

// A member or spare the administrator failed, added again: its slot goes (it
// is emptied and rebuilt, or made a spare, like a new one). Its old role.
std::optional<MemberRole> Daemon::take_back(const std::string& path) {
    const auto had = set->find(path);
    if (!had || set->member(*had).state.load() != MemberState::Failed) return std::nullopt;
    const MemberRole role = set->member(*had).sb.role;
    set->remove_member(*had);
    return role;
}

size_t Daemon::member_index(const std::string& path) {
    const auto i = set->find(path);  // removed slots are not found
    if (!i)
        throw Error(ENOENT, path, fmt::format("{} is not a member or spare of this set", path));
    return *i;
}

// member-fail|remove|add|replace, spare-add|remove.
nlohmann::json Daemon::handle_membership(const std::string& cmd, const nlohmann::json& req) {
    const std::string path = req.value("path", "");
    if (cmd == "member-fail") {
        const size_t i = member_index(path);
        if (set->member(i).state.load() == MemberState::Active && set->healthy_count() <= 1)
            throw Error(EBUSY, path, fmt::format("{} is the last complete member; refusing to fail it", path));
        set->fail_by_admin(i, "failed by the administrator");
        return nlohmann::json::object();
    }
    if (cmd == "member-remove" || cmd == "spare-remove") {
        const size_t i = member_index(path);
        if (cmd == "spare-remove" && set->member(i).state.load() != MemberState::Spare)
            throw Error(EINVAL, path, fmt::format("{} is not a spare", path));
        set->remove_member(i);
        alerts->raise("MemberRemoved", fmt::format("{} was removed from the set", path));
        return nlohmann::json::object();
    }
    if (cmd == "spare-add") {
        take_back(path);
        set->add_member(path, MemberState::Spare);
        alerts->raise("SpareAdded", fmt::format("{} is a hot spare", path));
        promote_spare();
        return nlohmann::json::object();
    }
    if (cmd == "member-add") {
        // A failed data member comes back as the copy it was, not as one more.
        const auto back = take_back(path);
        const size_t i = set->add_member(path, MemberState::Spare, !back || *back == MemberRole::Spare);
        rebuilder->start(i);
        return nlohmann::json::object();
    }
    if (cmd == "member-replace") {
        const size_t old = member_index(req.value("old", ""));
        const size_t i = set->add_member(path, MemberState::Spare);
        rebuilder->start(i, [this, old] {
            set->fail_by_admin(old, "replaced by the administrator");
            try {
                set->remove_member(old);
            } catch (const Error&) {
            }
        });
        return nlohmann::json::object();
    }
    throw Error(EINVAL, "", fmt::format("unknown request '{}'", cmd));
}

}  // namespace nvrfs
