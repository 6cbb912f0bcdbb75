#!/usr/bin/env bash
# make install puts binaries, man pages and the udev rule in the standard
# places (staged with DESTDIR), the installed programs run, and make uninstall
# removes every file it installed.
# test-locks: build
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/nvrfs-it.XXXXXX); trap 'rm -rf "$T"' EXIT
D=$T/root
check "make install DESTDIR=..." quiet make -C "$ROOT" install DESTDIR="$D"
for f in usr/share/nvrfs/manifest usr/share/nvrfs/manifest.sig usr/sbin/nvrfsd usr/sbin/nvrctl usr/share/man/man8/nvrfsd.8 usr/share/man/man8/nvrctl.8 \
         usr/share/man/man5/nvrfs.conf.5 lib/udev/rules.d/90-nvrfs-backup.rules; do
  check "installs /$f" test -s "$D/$f"
done
check "the config directory is private" test "$(stat -c %a "$D/etc/nvrfs")" = 700
check "the installed nvrctl runs" quiet "$D/usr/sbin/nvrctl" --help
check "the installed nvrfsd runs" quiet "$D/usr/sbin/nvrfsd" --help
check "the udev rule calls the installed nvrctl" grep -q '/usr/sbin/nvrctl device hook' "$D/lib/udev/rules.d/90-nvrfs-backup.rules"
check "make uninstall DESTDIR=..." quiet make -C "$ROOT" uninstall DESTDIR="$D"
check "  ... leaves no file behind" test -z "$(find "$D" -type f)"
finish
