// integrity.hpp — installed programs refuse to run when tampered (IoT-1001-3 5.6.1.1).
//
// `make install` (scripts/sign-release) writes <root>/usr/share/nvrfs/manifest
// — the SHA-256 of every installed binary, rule, unit and page — and
// manifest.sig, an Ed25519 signature by the vendor key. The vendor's public key
// is compiled into the programs (build/vendor_pub.h). Installed builds of
// nvrfsd and nvrctl call verify_installation() before anything else: a
// missing or forged signature, a file that differs from its manifest entry, or
// a program absent from the manifest stops them with a clear message and a
// syslog alert. <root> is found from the running program's own path
// (<root>/usr/sbin/PROGRAM), so a staged install (DESTDIR) verifies too.
#pragma once
#include <string>
#include <vector>

namespace nvrfs {

struct IntegrityEntry {
    std::string path;  // relative to the install root
    std::string state; // "ok", "modified", "missing"
};

struct IntegrityReport {
    bool ok = false;
    std::string root, problem;  // problem: why the manifest itself is not trusted
    std::vector<IntegrityEntry> files;
};

// Checks the manifest signature and every file it lists, and that `self`
// (the running executable) is one of them.
IntegrityReport check_installation(const std::string& self_exe);

// Set by the link: true in installed (release) builds, false in the build tree.
bool integrity_enforced();

// For installed builds: exits with status 1 after a one-line error and a
// syslog alert unless check_installation() is clean. With `self_only`, only
// the signature and the program itself must be intact (for the diagnostic
// `nvrctl verify-install`, which then reports the other files).
void verify_installation_or_exit(const char* program, bool self_only = false);

}  // namespace nvrfs
