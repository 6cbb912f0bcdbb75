#!/usr/bin/env python3
"""sbom.py BINARY... — the third-party software nvrfs is made of (5.6.1.2).

Reads the real link of each binary (ldd), maps every shared library to the
Debian package that ships it (dpkg -S) with its version and source package
(dpkg-query), adds the header-only libraries compiled in, and writes
build/sbom.spdx.json (SPDX 2.3) and build/THIRD_PARTY.md. The checked-in
THIRD_PARTY.md is this file's output; a test fails when they differ in the
packages they list."""
import datetime, json, os, re, subprocess, sys, uuid

HEADER_ONLY = {  # compiled in, no shared library to find
    "nlohmann-json3-dev": "JSON for audit records and --json output (header only)",
}
RUN_AS_PROGRAM = {  # not linked: started by nvrctl (execvp), so ldd cannot see it
    "ffmpeg": ("nvrctl export", ["ffmpeg", "ffprobe"], "decoding, privacy masks and H.264 re-encoding of evidence exports"),
}
PURPOSE = {
    "libfuse3-3": "the FUSE filesystem (nvrfsd)", "libssl3": "AES-256-GCM/SIV, HKDF, PBKDF2, HMAC, SHA-256, Ed25519",
    "libfmt9": "message formatting", "libblkid1": "identifying backup devices", "libcryptsetup12": "recognising LUKS volumes",
    "libclamav12": "malware scan of backup devices", "libudev1": "udev database and device monitor",
    "libstdc++6": "C++ standard library", "libgcc-s1": "GCC runtime", "libc6": "C library",
    "libtss2-esys-3.0.2-0": "TPM 2.0 sealing of the host key (ESYS)", "libtss2-tctildr0": "reaching the TPM (TCTI loader)",
    "libcurl4": "S3 requests of the archive tier, SigV4-signed by libcurl", "libtss2-mu0": "TPM object (un)marshalling", "libtss2-rc0": "TPM error texts", "libtss2-sys1": "TPM command layer (used by ESYS)",
}


def sh(*args):
    return subprocess.run(args, capture_output=True, text=True).stdout


def candidates(path):
    """The names dpkg may know a library by (merged /usr: with or without it)."""
    real = os.path.realpath(path)
    return {path, real, re.sub(r"^/usr", "", path), re.sub(r"^/usr", "", real), "/usr" + path, "/usr" + real}


def packages_of(paths):
    """The Debian package of each path, or None: one `dpkg -S` for all of them
    (each call reads the whole package database, a third of a second here)."""
    names = {p: candidates(p) for p in paths}
    asked = set().union(*names.values()) if names else set()
    owner = {}
    for line in sh("dpkg", "-S", *sorted(asked)).splitlines():
        pkgs, sep, found = line.partition(": ")
        if sep and found in asked:
            owner[found] = pkgs.split(",")[0].split(":")[0].strip()
    return {p: next((owner[c] for c in sorted(names[p]) if c in owner), None) for p in paths}


def main():
    bins = sys.argv[1:]
    pkgs = {}  # name -> {files:set, used_by:set}
    links = []  # (program, library path)
    for b in bins:
        for line in sh("ldd", b).splitlines():
            m = re.search(r"=>\s+(\S+)\s+\(", line) or re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                links.append((b, m.group(1)))
    owner = packages_of({lib for _, lib in links})
    for b, lib in links:
        pkg = owner[lib] or "UNKNOWN"
        e = pkgs.setdefault(pkg, {"files": set(), "used_by": set()})
        e["files"].add(os.path.basename(lib))
        e["used_by"].add(os.path.basename(b))
    for pkg in HEADER_ONLY:
        pkgs.setdefault(pkg, {"files": set(), "used_by": {"(compiled in)"}})
    for pkg, (by, progs, _) in RUN_AS_PROGRAM.items():
        pkgs.setdefault(pkg, {"files": set(progs), "used_by": {f"(run by {by})"}})
    rows = []
    for name in sorted(pkgs):
        q = sh("dpkg-query", "-W", "-f", "${Version}\t${source:Package}\t${Homepage}", name).split("\t")
        version, source, home = (q + ["", "", ""])[:3] if len(q) >= 2 else ("UNKNOWN", "UNKNOWN", "")
        rows.append({"name": name, "version": version, "source": source or name, "homepage": home,
                     "files": sorted(pkgs[name]["files"]), "used_by": sorted(pkgs[name]["used_by"]),
                     "purpose": PURPOSE.get(name, HEADER_ONLY.get(name, RUN_AS_PROGRAM.get(name, ("", [], "indirect dependency"))[2]))})
    os.makedirs("build", exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": "nvrfs",
        "documentNamespace": f"https://nvrfs.invalid/spdx/{uuid.uuid4()}",
        "creationInfo": {"created": now, "creators": ["Tool: nvrfs scripts/sbom.py"]},
        "packages": [{"name": "nvrfs", "SPDXID": "SPDXRef-nvrfs", "downloadLocation": "NOASSERTION",
                      "filesAnalyzed": False, "supplier": "NOASSERTION"}],
        "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-nvrfs"}],
    }
    for r in rows:
        sid = "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", r["name"])
        doc["packages"].append({
            "name": r["name"], "SPDXID": sid, "versionInfo": r["version"], "supplier": "Organization: Debian",
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False, "sourceInfo": f"Debian source package {r['source']}",
            "comment": f"files: {', '.join(r['files']) or '(headers)'}; used by: {', '.join(r['used_by'])}",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": f"pkg:deb/debian/{r['name']}@{r['version']}?arch=amd64"}]})
        doc["relationships"].append({"spdxElementId": "SPDXRef-nvrfs", "relationshipType": "DEPENDS_ON", "relatedSpdxElement": sid})
    with open("build/sbom.spdx.json", "w") as f:
        json.dump(doc, f, indent=2)
    with open("build/THIRD_PARTY.md", "w") as f:
        f.write("# Third-party software in nvrfs\n\n"
                "Generated by `make sbom` (scripts/sbom.py) from the real link of the installed programs "
                "(`ldd`, `dpkg -S`); versions are those of the build machine. Machine-readable: `build/sbom.spdx.json` (SPDX 2.3).\n\n"
                "| Debian package | source package | used by | for | libraries |\n|---|---|---|---|---|\n")
        for r in rows:
            f.write(f"| {r['name']} | {r['source']} | {', '.join(r['used_by'])} | {r['purpose']} | {', '.join(r['files']) or '(headers)'} |\n")
    print(f"{len(rows)} packages -> build/sbom.spdx.json, build/THIRD_PARTY.md")
    return 1 if "UNKNOWN" in pkgs else 0


if __name__ == "__main__":
    sys.exit(main())
