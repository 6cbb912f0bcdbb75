#include "product/integrity.hpp"

#include "base/crypto.hpp"
#include "base/error.hpp"
#include "base/io.hpp"
#include "vendor_pub.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fmt/format.h>
#include <memory>
#include <sstream>
#include <syslog.h>
#include <unistd.h>

namespace nvrfs {
namespace {

std::string file_sha256(const std::string& path, bool& found) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    found = fd.valid();
    if (!fd) return "";
    try {
        return sha256_fd(fd.get(), path);
    } catch (const Error&) {
        return "";  // unreadable part way: not what the manifest says
    }
}

bool signature_ok(const std::string& msg, const std::string& sig) {
    return ed25519_verify(kVendorPublicKeyPem, msg, sig);
}

}  // namespace

IntegrityReport check_installation(const std::string& self_exe) {
    IntegrityReport r;
    // <root>/usr/sbin/PROGRAM -> <root>
    std::string root = self_exe;
    for (int i = 0; i < 3 && !root.empty(); ++i) root = root.substr(0, root.rfind('/'));
    r.root = root.empty() ? "/" : root;
    const std::string base = root + "/usr/share/nvrfs/";
    std::string manifest, sig;
    try {
        manifest = read_file_at(AT_FDCWD, base + "manifest", 1 << 20);
        sig = read_file_at(AT_FDCWD, base + "manifest.sig", 4096);
    } catch (const Error& e) {
        r.problem = fmt::format("no signed manifest: {}", e.what());
        return r;
    }
    if (!signature_ok(manifest, sig)) {
        r.problem = fmt::format("{}manifest is not signed by the vendor key", base);
        return r;
    }
    const std::string self_rel = self_exe.substr(root.size() + 1);
    bool self_listed = false;
    std::istringstream in(manifest);
    std::string line;
    r.ok = true;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto sp = line.find("  ");
        if (sp != 64) {
            r.problem = "malformed manifest line: " + line;
            r.ok = false;
            return r;
        }
        const std::string want = line.substr(0, 64), rel = line.substr(66);
        bool found = false;
        const std::string have = file_sha256(root + "/" + rel, found);
        const std::string state = !found ? "missing" : (have == want ? "ok" : "modified");
        if (state != "ok") r.ok = false;
        if (rel == self_rel) self_listed = true;
        r.files.push_back({rel, state});
    }
    if (!self_listed) {
        r.ok = false;
        r.problem = fmt::format("{} is not in the manifest", self_exe);
    }
    return r;
}

void verify_installation_or_exit(const char* program, bool self_only) {
    char exe[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        std::fprintf(stderr, "%s: integrity check failed: cannot find my own executable\n", program);
        std::exit(1);
    }
    exe[n] = '\0';
    const IntegrityReport r = check_installation(exe);
    if (r.ok) return;
    const std::string self_rel = std::string(exe).substr(r.root == "/" ? 1 : r.root.size() + 1);
    std::string why = r.problem;
    bool self_bad = !r.problem.empty();
    for (const auto& f : r.files)
        if (f.state != "ok") {
            why += (why.empty() ? "" : "; ") + fmt::format("/{} is {}", f.path, f.state);
            self_bad |= f.path == self_rel;
        }
    if (self_only && !self_bad) return;
    std::fprintf(stderr, "%s: integrity check failed, refusing to run: %s (run nvrctl verify-install; reinstall the package)\n",
                 program, why.c_str());
    ::openlog(program, LOG_PID, LOG_AUTHPRIV);
    ::syslog(LOG_CRIT, "nvrfs alert IntegrityFailed: refusing to run: %s", why.c_str());
    std::exit(1);
}

}  // namespace nvrfs
