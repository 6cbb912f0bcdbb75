// nvrctl — administer an nvrfs set.
//
// A verb table (name, handler, summary) like zpool's; every verb parses its own
// options. Verbs that change a mounted set talk to nvrfsd over its control
// socket; inspection verbs also work on unmounted members directly.
// Exit status: 0 ok, 1 a problem was found or the action failed, 2 usage error.
#include "cli.hpp"
#include "admin/control.hpp"
#include "base/error.hpp"
#include "product/integrity.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <functional>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace nvrfs::cli {

Common parse(const Args& args, const std::vector<std::string>& value_opts, const std::vector<std::string>& flags) {
    Common c;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto need = [&]() -> std::string {
            if (i + 1 >= args.size()) throw UsageError("option " + a + " needs a value");
            return args[++i];
        };
        if (a == "--config") c.config_file = need();
        else if (a == "--member") c.members.push_back(need());
        else if (a == "--host-key") c.opts["--host-key"] = need();
        else if (a == "--json") c.json = true;
        else if (std::find(flags.begin(), flags.end(), a) != flags.end()) c.opts[a] = "yes";
        else if (std::find(value_opts.begin(), value_opts.end(), a) != value_opts.end()) c.opts[a] = need();
        else if (a.rfind("-", 0) == 0) throw UsageError("unknown option '" + a + "'");
        else c.rest.push_back(a);
    }
    return c;
}

Config load_config(const Common& c) {
    Config cfg;
    if (c.members.empty() || !c.config_file.empty()) cfg.load_file(c.config_path());
    if (!c.members.empty()) {
        cfg.clear("member");
        cfg.clear("spare");
        for (auto& m : c.members) cfg.set("member", m);
    }
    if (c.has("--host-key")) cfg.set("host_key", c.opts.at("--host-key"));
    return cfg;
}

std::optional<nlohmann::json> ask_daemon(const Config& cfg, const nlohmann::json& req) {
    try {
        return control_call(cfg.text("control_socket"), req);
    } catch (const Error& e) {
        if (e.code() == ENOTCONN) return std::nullopt;
        throw;
    }
}

nlohmann::json require_daemon(const Config& cfg, const nlohmann::json& req) {
    return control_call(cfg.text("control_socket"), req);
}

std::string human_bytes(uint64_t b) {
    const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int i = 0;
    while (v >= 1024 && i < 4) v /= 1024, ++i;
    return fmt::format("{:.1f} {}", v, u[i]);
}

std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    auto esc = [&](unsigned char c) { out += fmt::format("\\x{:02x}", c); };
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f || c == '\\') {
            esc(c);
            ++i;
            continue;
        }
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        // One well-formed UTF-8 sequence passes whole; C1 controls (U+0080..U+009F)
        // and anything malformed are escaped byte by byte.
        const size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
        bool ok = len > 0 && i + len <= s.size();
        for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
        if (ok && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) ok = false;
        if (!ok) {
            esc(c);
            ++i;
            continue;
        }
        out.append(s.substr(i, len));
        i += len;
    }
    return out;
}

int cmd_verify_install(const Args& args) {
    Common c = parse(args);
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) throw Error(EIO, "", "cannot find my own executable");
    exe[n] = '\0';
    const nvrfs::IntegrityReport r = nvrfs::check_installation(exe);
    if (c.json) {
        nlohmann::json j = {{"ok", r.ok}, {"root", r.root}, {"problem", r.problem}, {"files", nlohmann::json::array()}};
        for (auto& f : r.files) j["files"].push_back({{"path", "/" + f.path}, {"state", f.state}});
        fmt::print("{}\n", j.dump(2));
    } else {
        for (auto& f : r.files)
            if (f.state != "ok") fmt::print("{:<9} /{}\n", f.state, f.path);
        if (!r.problem.empty()) fmt::print("problem: {}\n", r.problem);
        fmt::print("{}: {} files checked against the signed manifest\n", r.ok ? "installation intact" : "INSTALLATION NOT INTACT", r.files.size());
    }
    return r.ok ? 0 : 1;
}

namespace {

struct Verb {
    const char* name;
    std::function<int(const Args&)> run;
    const char* summary;
};

const std::vector<Verb>& verbs() {
    static const std::vector<Verb> v = {
        {"init", cmd_init, "init --member DIR --member DIR [--spare DIR] [--host-key F] [--config F|--no-config] [--min-free X]"},
        {"status", cmd_status, "status [--json]                       set state, members, rebuild, scrub, space, alerts"},
        {"metrics", cmd_metrics, "metrics                              the set's state for Prometheus (text exposition format)"},
        {"member", cmd_member, "member fail|remove|add DIR | member replace OLD NEW"},
        {"spare", cmd_spare, "spare add|remove DIR                 hot spares, promoted when a member fails"},
        {"key", cmd_key, "key recovery create|remove | key recover --passphrase-file F --host-key NEWFILE  the recovery key"},
        {"upgrade", cmd_upgrade, "upgrade                              record files of a set made before the namespace ledger"},
        {"set", cmd_set, "set accept-rollback                  take members older than this host's record at the next mount"},
        {"archive", cmd_archive, "archive status [--json] | archive now [--no-wait] | archive recall PATH  the archive tier (S3/Ceph)"},
        {"scrub", cmd_scrub, "scrub [--repair] [--no-wait] [--json]  verify every chunk on every member"},
        {"log", cmd_log, "log show|verify [--since T] [--until T] [--user U] [--path P] [--event E] [--json]"},
        {"alerts", cmd_alerts, "alerts [--all] [--ack ID|all] [--json]  alerts not yet acknowledged"},
        {"config", cmd_config, "config get [KEY] | config set KEY VALUE"},
        {"device", cmd_device, "device info|allow|deny|scan DEV | device list | device hook | device watch  backup devices"},
        {"verify-install", cmd_verify_install, "verify-install [--json]         check the signed manifest and every installed file"},
        {"mask", cmd_mask, "mask set CAMERA --rect x,y,w,h[;...]|--file F [--fill #rrggbb] | mask show|remove CAMERA | mask list"},
        {"export", cmd_export, "export --camera C[,C] --since T --until T --to DIR|DEV [--no-mask --reason R] | export verify DIR [--key FP]"},
        {"backup", cmd_backup, "backup create --to DEV|DIR | backup verify ARCHIVE | backup restore ARCHIVE --to DIR  (--passphrase-file F)"},
    };
    return v;
}

void usage(FILE* out) {
    fmt::print(out, "usage: nvrctl VERB [options]   (see nvrctl(8))\n");
    for (auto& v : verbs()) fmt::print(out, "  nvrctl {}\n", v.summary);
    fmt::print(out, "every verb takes --config FILE (default {}), or --member DIR... and --host-key FILE\n"
                    "exit status: 0 ok, 1 problem found or action failed, 2 usage error\n",
               kDefaultConfig);
}

}  // namespace
}  // namespace nvrfs::cli

int main(int argc, char** argv) {
    using namespace nvrfs::cli;
    nvrfs::protect_key_memory();  // offline verbs unwrap the set's keys
    if (nvrfs::integrity_enforced())
        nvrfs::verify_installation_or_exit("nvrctl", argc > 1 && std::string(argv[1]) == "verify-install");
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const std::string verb = argv[1];
    if (verb == "-h" || verb == "--help" || verb == "help") {
        usage(stdout);
        return 0;
    }
    Args args(argv + 2, argv + argc);
    if (std::find(args.begin(), args.end(), "--help") != args.end() || std::find(args.begin(), args.end(), "-h") != args.end()) {
        if (print_help(verb, args)) return 0;
        usage(stderr);
        return 2;
    }
    for (auto& v : verbs()) {
        if (verb != v.name) continue;
        try {
            return v.run(args);
        } catch (const UsageError& e) {
            fmt::print(stderr, "nvrctl {}: {}\n", verb, e.what());
            return 2;
        } catch (const nvrfs::Error& e) {
            fmt::print(stderr, "nvrctl {}: {}\n", verb, e.what());
            return 1;
        } catch (const std::exception& e) {
            // Last line of defence: bad input is one error line and exit 1, never an abort.
            fmt::print(stderr, "nvrctl {}: {}\n", verb, e.what());
            return 1;
        }
    }
    fmt::print(stderr, "nvrctl: unknown verb '{}'\n", verb);
    usage(stderr);
    return 2;
}
