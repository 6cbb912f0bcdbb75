// nvrfsd — mount an nvrfs mirror set.
//
//   nvrfsd [--config FILE] [--member DIR]... [options] [-f] [-o FUSEOPTS] MOUNTPOINT
//
// Everything that can be wrong with the input is checked before the mount:
// options, config, host key, members, mountpoint. Each failure is one line on
// stderr and exit status 1 (2 for usage errors); nothing is written to members.
#include "daemon.hpp"
#include "base/error.hpp"
#include "product/integrity.hpp"
#include "ops.hpp"
#include "session_loop.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <chrono>
#include <climits>
#include <thread>
#include <fstream>
#include <memory>
#include <sstream>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include <vector>

using namespace nvrfs;

namespace {

void usage(FILE* out) {
    fmt::print(out,
               "usage: nvrfsd [options] [MOUNTPOINT]\n"
               "Mount an nvrfs mirror set (see nvrfsd(8)).\n\n"
               "  --config FILE                  read options from FILE (default {} if no --member is given)\n"
               "  -f, --foreground               stay in the foreground\n"
               "  -o OPTS                        extra FUSE mount options\n",
               kDefaultConfig);
    for (const auto& o : option_table()) {
        std::string flag = o.key;
        std::replace(flag.begin(), flag.end(), '_', '-');
        fmt::print(out, "  --{:<28} {}{}\n", flag + (o.kind == OptKind::Bool ? "" : " X"), o.help,
                   *o.def ? fmt::format(" [{}]", o.def) : "");
    }
}

struct Args {
    Config cfg;
    std::string config_file;
    std::string mountpoint;
    bool foreground = false;
    std::vector<std::string> fuse_opts;
};

// Returns the exit status to use, or -1 to go on.
int parse(int argc, char** argv, Args& a) {
    std::string config_file;
    std::vector<std::pair<std::string, std::string>> sets;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto need = [&](const std::string& name) -> std::string {
            if (i + 1 >= argc) throw Error(EINVAL, "", fmt::format("option {} needs a value", name));
            return argv[++i];
        };
        if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        } else if (arg == "-f" || arg == "--foreground") {
            a.foreground = true;
        } else if (arg == "-o") {
            a.fuse_opts.push_back(need(arg));
        } else if (arg == "--config") {
            config_file = need(arg);
        } else if (arg.rfind("--", 0) == 0) {
            std::string key = arg.substr(2), value;
            if (auto eq = key.find('='); eq != std::string::npos) {
                value = key.substr(eq + 1);
                key = key.substr(0, eq);
            }
            const OptionSpec* o = find_option(key);
            if (!o) throw Error(EINVAL, "", fmt::format("unknown option '{}' (see nvrfsd --help)", arg));
            if (value.empty()) value = o->kind == OptKind::Bool ? "yes" : need(arg);
            sets.emplace_back(o->key, value);
        } else if (arg[0] == '-') {
            throw Error(EINVAL, "", fmt::format("unknown option '{}' (see nvrfsd --help)", arg));
        } else if (a.mountpoint.empty()) {
            a.mountpoint = arg;
        } else {
            throw Error(EINVAL, "", fmt::format("unexpected argument '{}': only one mountpoint", arg));
        }
    }
    bool has_member = false;
    for (auto& [k, v] : sets) has_member |= k == "member";
    if (config_file.empty() && !has_member) config_file = kDefaultConfig;
    if (!config_file.empty()) a.cfg.load_file(config_file);
    a.config_file = config_file;
    for (auto& [k, v] : sets) {
        if (k == "member" && has_member) {
            a.cfg.clear("member");  // members on the command line replace the file's
            has_member = false;
        }
        a.cfg.set(k, v);
    }
    if (a.mountpoint.empty()) a.mountpoint = a.cfg.text("mountpoint");
    if (a.mountpoint.empty()) throw Error(EINVAL, "", "no mountpoint given (MOUNTPOINT argument or mountpoint = in the config; see nvrfsd --help)");
    return -1;
}

// Recordings are read sequentially (export, playback, backup): a bigger
// readahead than the kernel's 128 KiB default for FUSE lets reads overlap
// decryption. The kernel lowers the value again while it processes FUSE INIT,
// so this runs once INIT is done. The device is found through mountinfo: a
// stat() of our own mountpoint would be a FUSE request to ourselves.
bool set_readahead(const std::string& real, unsigned kb) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line, devno;
    while (std::getline(in, line)) {
        std::istringstream ss(line);
        std::string id, parent, dev, root, point;
        ss >> id >> parent >> dev >> root >> point;
        if (point == real && line.find("fuse.nvrfs") != std::string::npos) devno = dev;
    }
    if (devno.empty()) return false;
    const std::string knob = "/sys/class/bdi/" + devno + "/read_ahead_kb";
    std::ofstream(knob) << kb;
    unsigned now = 0;
    std::ifstream(knob) >> now;
    return now == kb;
}

void check_mountpoint(const std::string& mp) {
    struct stat st {}, parent {};
    if (::stat(mp.c_str(), &st) < 0) {
        const int e = errno;
        if (e == ENOTCONN)
            throw Error(e, mp, fmt::format("mountpoint {} holds a dead FUSE mount; run `fusermount3 -u {}`", mp, mp));
        throw Error(e, mp, fmt::format("mountpoint {}: {}", mp, std::strerror(e)));
    }
    if (!S_ISDIR(st.st_mode)) throw Error(ENOTDIR, mp, fmt::format("mountpoint {} is not a directory", mp));
    if (::stat((mp + "/..").c_str(), &parent) == 0 && (parent.st_dev != st.st_dev || parent.st_ino == st.st_ino))
        throw Error(EBUSY, mp, fmt::format("mountpoint {} is already in use (a filesystem is mounted there)", mp));
}

}  // namespace

int main(int argc, char** argv) {
    nvrfs::protect_key_memory();  // keys live in this process
    if (integrity_enforced()) verify_installation_or_exit("nvrfsd");
    ::openlog("nvrfsd", LOG_PID, LOG_DAEMON);
    Args a;
    try {
        if (int rc = parse(argc, argv, a); rc >= 0) return rc;
    } catch (const Error& e) {
        fmt::print(stderr, "nvrfsd: {}\n", e.what());
        return 2;
    }
    std::unique_ptr<Daemon> d;
    try {
        check_mountpoint(a.mountpoint);
        d = Daemon::prepare(a.cfg, a.config_file, a.mountpoint);
    } catch (const AnchorRefusal& e) {
        // Exit status 3: the service unit does not restart on it.
        fmt::print(stderr, "nvrfsd: {}\n", e.what());
        ::syslog(LOG_CRIT, "refusing to start: %s", e.what());
        return 3;
    } catch (const Error& e) {
        fmt::print(stderr, "nvrfsd: {}\n", e.what());
        ::syslog(LOG_ERR, "refusing to start: %s", e.what());
        return 1;
    }

    std::string opts = "default_permissions,allow_other,fsname=nvrfs,subtype=nvrfs";
    for (const auto& o : a.fuse_opts) opts += "," + o;
    std::vector<std::string> sargs = {"nvrfsd", "-o", opts};
    std::vector<char*> cargs;
    for (auto& s : sargs) cargs.push_back(s.data());
    fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(cargs.size()), cargs.data());

    // Resolved before mounting: afterwards a lookup of it would be a FUSE request.
    char resolved[PATH_MAX];
    const std::string real_mountpoint = ::realpath(a.mountpoint.c_str(), resolved) ? resolved : a.mountpoint;
    fuse* f = fuse_new(&fargs, &nvrfs_operations(), sizeof(fuse_operations), d.get());
    if (!f) {
        fmt::print(stderr, "nvrfsd: cannot set up FUSE (bad -o option?)\n");
        return 1;
    }
    if (fuse_mount(f, a.mountpoint.c_str()) != 0) {
        fmt::print(stderr, "nvrfsd: cannot mount on {} (is /dev/fuse available and are you root?)\n", a.mountpoint);
        fuse_destroy(f);
        d->shutdown();
        return 1;
    }
    fuse_session* se = fuse_get_session(f);
    fuse_set_signal_handlers(se);
    if (fuse_daemonize(a.foreground ? 1 : 0) != 0) {
        fuse_unmount(f);
        fuse_destroy(f);
        return 1;
    }
    d->start_background();
    // Joined before the daemon object goes away: it reads the daemon's state.
    std::atomic<bool> readahead_stop{false};
    std::thread readahead([&readahead_stop, mp = real_mountpoint, daemon = d.get()] {
        for (int i = 0; i < 100 && !readahead_stop; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            if (daemon->fuse_initialized && set_readahead(mp, 4096)) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                if (set_readahead(mp, 4096)) return;
            }
        }
    });
    // As many workers as fuse_loop_mt would start at most (its default).
    const int rc = run_session(f, 10);
    readahead_stop = true;
    readahead.join();
    fuse_remove_signal_handlers(se);
    fuse_unmount(f);
    fuse_destroy(f);
    d->shutdown();
    return rc == 0 ? 0 : 1;
}
