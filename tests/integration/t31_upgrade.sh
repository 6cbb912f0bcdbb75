#!/usr/bin/env bash
# Issue 12, migration: a set written before the namespace ledger (a golden
# fixture made by the previous format's code, tests/fixtures/v1-set) mounts
# and reads back with today's nvrfs; its files are checked for existence only
# (their records carry no id) until `nvrctl upgrade` records them; from then
# on a swap of two of its recordings on the disks is reported by scrub.
. "$(dirname "$0")/lib.sh"
new_workdir
cp -r "$ROOT/tests/fixtures/v1-set/m1" "$ROOT/tests/fixtures/v1-set/m2" "$T/"
cp "$ROOT/tests/fixtures/v1-set/host.key" "$KEY"
chmod 700 "$M1" "$M2"; chmod 600 "$KEY"
printf "member = %s\nmember = %s\nhost_key = %s\ncheck_interval = 1\ncontrol_socket = %s\nstate_dir = %s\n" \
  "$M1" "$M2" "$KEY" "$T/ctl.sock" "$T/state" > "$CONF"
chmod 600 "$CONF"
start_daemon
check "the version-1 set mounts and reads back" test "$(cat "$MNT/cam1/a.mp4" "$MNT/cam1/b.mp4" "$MNT/cam2/c.mp4")" = \
  "$(printf 'recording cam1 a\nrecording cam1 bb\nrecording cam2 ccc')"
check "its audit log verifies" quiet "$NVRCTL" log verify --config "$CONF"
check "scrub is clean" quiet "$NVRCTL" scrub --config "$CONF"
out=$("$NVRCTL" upgrade --config "$CONF"); rc=$?
check "nvrctl upgrade records its 3 files (exit $rc: $out)" grep -q "3 file(s) recorded" <<<"$out"
out=$("$NVRCTL" upgrade --config "$CONF")
check "... once ($out)" grep -q "0 file(s) recorded as they are now, 3 already" <<<"$out"
echo new > "$MNT/cam2/d.mp4"

# Format version 2 (issue 17): the superblock is version 2 once mounted; a
# version 1 file stays version 1 as it grows (to a chunk boundary, which
# version 1 ends in a full chunk, then past it, which seals that chunk again);
# a new file is version 2 and ends on a boundary in an empty chunk.
sb_version() { od -An -tu1 -j11 -N1 "$1/.nvrfs/superblock" | tr -d ' '; }
check "the superblocks are version 2 after the mount" test "$(sb_version "$M1")$(sb_version "$M2")" = 22
# by_size SIZE: the stored file of that size on member 1; hdr_version FILE: its header's format version.
by_size() { find "$M1" -type f -size "$1"c ! -path '*/.nvrfs/*' | head -1; }
hdr_version() { od -An -tu1 -j5 -N1 "$1" | tr -d ' '; }
cp "$MNT/cam2/c.mp4" "$T/c.exp"
head -c $((131072 - $(stat -c %s "$T/c.exp"))) /dev/urandom | tee -a "$T/c.exp" >> "$MNT/cam2/c.mp4"
f=$(by_size $((32 + 2 * 65564)))
check "a version 1 file grown to 128 KiB ends in its full second chunk (version 1 layout)" test -n "$f"
check "... and its header still says version 1" test "$(hdr_version "$f")" = 1
head -c 1000 /dev/urandom | tee -a "$T/c.exp" >> "$MNT/cam2/c.mp4"
f=$(by_size $((32 + 2 * 65564 + 1000 + 28)))
check "appended past the boundary: still version 1" test "$(hdr_version "$f")" = 1
head -c 131072 /dev/urandom > "$T/e.exp"; cp "$T/e.exp" "$MNT/cam2/e.mp4"
f=$(by_size $((32 + 2 * 65564 + 28)))
check "a new 128 KiB file is version 2 and ends in an empty chunk" test "$(hdr_version "$f")" = 2
cp "$T/c.exp" "$MNT/cam2/c.mp4"
f=$(by_size $((32 + 2 * 65564 + 1000 + 28)))
check "the version 1 file truncated to zero (cp over it) starts again as version 2" test "$(hdr_version "$f")" = 2
stop_daemon
start_daemon
check "after a remount both read back" bash -c "cmp -s '$MNT/cam2/c.mp4' '$T/c.exp' && cmp -s '$MNT/cam2/e.mp4' '$T/e.exp'"
check "scrub is clean with both versions" quiet "$NVRCTL" scrub --config "$CONF"
stop_daemon
# cam1's two recordings swapped on both members (the two stored files of cam1's directory).
for m in "$M1" "$M2"; do
  d=$(for x in "$m"/*/; do [ "$(find "$x" -maxdepth 1 -type f ! -name .nvrfs.diriv | wc -l)" = 2 ] && echo "$x"; done | head -1)
  set -- $(find "$d" -maxdepth 1 -type f ! -name .nvrfs.diriv | sort)
  mv "$1" "$1.x"; mv "$2" "$1"; mv "$1.x" "$2"
done
start_daemon
"$NVRCTL" scrub --config "$CONF" > "$T/scrub.out" 2>&1; rc=$?
check "after upgrade, two of its recordings swapped on the disks are reported (exit $rc)" test $rc -eq 1
check "... both of them" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -c \"holds another file's contents\" | grep -qx 2"
finish
