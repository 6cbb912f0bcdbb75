#!/usr/bin/env bash
# Product packaging: `make deb` builds a package that lintian accepts, that
# installs the signed installation (verify-install passes, the systemd unit
# verifies, man pages are found) and that removes without leaving files.
# test-locks: build udev
. "$(dirname "$0")/lib.sh"
command -v dpkg-deb >/dev/null || { echo "dpkg-deb is not available"; exit 77; }
deb=$(make -s -C "$ROOT" deb 2>/dev/null | tail -1)
check "make deb builds a package ($(basename "${deb:-none}"))" test -s "$deb"
if command -v lintian >/dev/null; then
  out=$(lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v 'root privileges'); echo "$out" | sed 's/^/    lintian: /'
  check "lintian reports no error and no warning" bash -c "! grep -q '^[EW]:' <<<\"\$1\"" _ "$out"
fi
dpkg -r nvrfs >/dev/null 2>&1
check "dpkg -i installs it" quiet dpkg -i "$deb"
check "the installed nvrctl verifies the installation" quiet /usr/sbin/nvrctl verify-install
check "the installed nvrfsd starts its checks and shows help" quiet /usr/sbin/nvrfsd --help
check "man finds the pages" bash -c "man -w nvrfsd >/dev/null && man -w nvrctl >/dev/null && man -w 5 nvrfs.conf >/dev/null"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify /lib/systemd/system/nvrfsd.service 2>&1)
  check "systemd-analyze verify accepts the unit${out:+: $out}" test -z "$out"
fi
check "the udev rule is in place" test -s /lib/udev/rules.d/90-nvrfs-backup.rules
check "dpkg -r removes it" quiet dpkg -r nvrfs
check "  ... leaving none of its files" bash -c "! ls /usr/sbin/nvrfsd /usr/sbin/nvrctl /lib/udev/rules.d/90-nvrfs-backup.rules /lib/systemd/system/nvrfsd.service /usr/share/nvrfs/manifest 2>/dev/null | grep -q ."
dpkg -P nvrfs >/dev/null 2>&1
finish
