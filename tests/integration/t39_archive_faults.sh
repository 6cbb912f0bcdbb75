#!/usr/bin/env bash
# Issue 16: the archive tier under space pressure, retention and a crash,
# on a real single-node Ceph. Members are 64 MiB tmpfs with recycling on:
# below archive_when_free_below the oldest recordings move to the archive
# (whatever archive_after says) and nothing is deleted; archive_retention
# deletes archived files only (audited, objects gone), never local ones;
# nvrfsd killed -9 between marking a file archived and punching its chunks
# leaves it readable after the remount. A recording deleted while it is
# uploaded leaves nothing in the archive; one recalled and archived again
# keeps its new object.
# test-locks: ceph
# test-slow: 40
. "$(dirname "$0")/lib.sh"
setup 64M
. "$(dirname "$0")/archive.inc"
start_ceph
log "Ceph up at $ENDPOINT"
sums() { ( cd "$MNT" && sha256sum cam1/*.mp4 ) > "$T/sums"; }
intact() { ( cd "$MNT" && sha256sum -c --quiet "$T/sums" ); }

# -- space pressure: the oldest move before recycling deletes anything ----------
archive_config nvr/pressure "archive_after = 365d" "archive_when_free_below = 50%" "recycle = yes"
start_daemon
mkdir "$MNT/cam1"
# Each file gets its age before the next is written: space runs short with
# the third, and a pass may come at any moment after that; it must already
# see a1 as the oldest.
ages=("5 days ago" "4 days ago" "3 days ago")
for i in 1 2 3 4; do
  head -c $((13000000 + i)) /dev/urandom > "$MNT/cam1/a$i.mp4"
  if [ "$i" -le 3 ]; then touch -d "${ages[i - 1]}" "$MNT/cam1/a$i.mp4"; fi
  # A playback holds the oldest open (reading) throughout: it still moves
  # first. (The mover once skipped files open for reading; a checksum run
  # at the wrong moment left a1 local and moved a2 and a3.)
  if [ "$i" = 1 ]; then exec 7< "$MNT/cam1/a1.mp4"; fi
done
sums
# The mover looks at free space every check_interval (1 s) by itself.
wait_for 30 is_archived 13000001 || { "$NVRCTL" archive status --config "$CONF"; "$NVRCTL" log show --config "$CONF" | tail -25; ls -l --time-style=full-iso "$MNT/cam1"; }
check "below archive_when_free_below the oldest recording moved on its own" is_archived 13000001
wait_for 10 bash -c "[ \$(df --output=avail -B1 '$MNT' | tail -1) -gt \$((64 * 1048576 / 2)) ]"
check "... and the next oldest until free space is back above the threshold" \
    bash -c "[ \$(df --output=avail -B1 '$MNT' | tail -1) -gt \$((64 * 1048576 / 2)) ]"
check_not "... the newest was left on the members" is_archived 13000004
check "... the playback open on the oldest reads on from the archive" \
    test "$(sha256sum <&7 | cut -d' ' -f1)" = "$(grep a1.mp4 "$T/sums" | cut -d' ' -f1)"
exec 7<&-
head -c 20000000 /dev/urandom > "$MNT/cam1/a5.mp4"; rc=$?
check "a 20 MB recording after that fits (exit $rc)" test $rc -eq 0
sums
nothing_deleted() { ! "$NVRCTL" log show --config "$CONF" --event unlink | grep -q . && ! has_alert Recycled; }
check "... nothing was deleted: no unlink, no Recycled alert" nothing_deleted
drop_caches
check "... every recording reads back byte-identical" intact
stop_daemon

# -- archive_retention: the archive's own rule, archived files only ------------
archive_config nvr/pressure "archive_after = 365d" "archive_when_free_below = 1%" "archive_retention = 2d"
# Read before the mount: the daemon's first pass may delete a1 at once.
OBJ1=$(object_of nvr/pressure 13000001)
start_daemon
head -c 300000 /dev/urandom > "$MNT/cam1/a6.mp4"; touch -d '3 days ago' "$MNT/cam1/a6.mp4"   # old, but local
"$NVRCTL" archive now --config "$CONF" >/dev/null 2>&1
check "archived files older than archive_retention are deleted" bash -c "[ ! -e '$MNT/cam1/a1.mp4' ]"
retention_audited() {
  "$NVRCTL" log show --json --config "$CONF" --event unlink | python3 -c '
import json, sys
sys.exit(0 if any(r.get("path") == "/cam1/a1.mp4" and r.get("reason") == "archive_retention" for r in json.load(sys.stdin)) else 1)'
}
check "... audited with their reason" retention_audited
check "... their objects are deleted from the archive (audited)" \
    deleted_from_archive "$OBJ1" a1.mp4
check "... a local file as old stays (retention is the archive's rule)" test -e "$MNT/cam1/a6.mp4"
check_not "... (it is local)" is_archived 300000
stop_daemon

# -- another archive target would strand the archived files ----------------------
archive_config nvr/elsewhere "archive_after = 1d" "archive_when_free_below = 1%"
out=$(timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?
check "archive changed to another bucket/prefix: nvrfsd refuses (exit $rc) naming where the files are" \
    bash -c "[ $rc -ne 0 ] && grep -q 'archived files are in s3://nvr/pressure' <<<\"\$1\"" _ "$out"

# -- nvrfsd killed during the switch -----------------------------------------------
# Written while nothing is old enough to move: a pass of this daemon must not
# archive k before the delayed one does. a6 goes, so that k is the only file
# the delayed pass switches and the hold can be long (the kill ends it).
archive_config nvr/pressure "archive_after = 365d" "archive_when_free_below = 1%"
start_daemon
rm "$MNT/cam1/a6.mp4"
head -c 9000000 /dev/urandom > "$MNT/cam1/k.mp4"; touch -d '2 days ago' "$MNT/cam1/k.mp4"
ksum=$(sha256sum < "$MNT/cam1/k.mp4")
stop_daemon
archive_config nvr/pressure "archive_after = 1d" "archive_when_free_below = 1%"
NVRFS_ARCHIVE_SWITCH_DELAY_MS=30000 start_daemon
"$NVRCTL" archive now --no-wait --config "$CONF" >/dev/null
wait_for 20 is_archived 9000000
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
umount -l "$MNT"
check "killed between the header and the punch: the header says archived" is_archived 9000000
unpunched() { [ "$(du -k "$(stored_by_size "$M1" 9000000)" | cut -f1)" -gt 8000 ]; }
check "... the chunks are still on the members (nothing punched yet)" unpunched
start_daemon
drop_caches
check "after the remount the file reads byte-identical" bash -c "[ \"\$(sha256sum < '$MNT/cam1/k.mp4')\" = '$ksum' ]"
check "... and scrub finds nothing wrong" bash -c "'$NVRCTL' scrub --config '$CONF' > '$T/scrub.out' 2>&1 || { cat '$T/scrub.out'; '$NVRCTL' log show --config '$CONF' --event alert | tail -5; false; }"
punched() { [ "$(du -k "$(stored_by_size "$M1" 9000000)" | cut -f1)" -lt 1000 ]; }
wait_for 20 punched
check "... the repairing scrub after the crash gave the space back (chunks punched)" punched
check "... keeping the file's time" bash -c "[ \$(stat -c %Y '$MNT/cam1/k.mp4') -lt \$((\$(date +%s) - 86400)) ]"

# -- deletions wait for the store, across a restart -----------------------------
OBJK=$(object_of nvr/pressure 9000000)
bash "$CEPH_CTL" rgw-stop "$CEPH_DIR"
rm "$MNT/cam1/k.mp4"
stop_daemon
check "an archived file unlinked while the store is down: its deletion is kept on the host" \
    grep -q '"why":"unlinked"' "$T/state/"*.archive-forget
bash "$CEPH_CTL" rgw-start "$CEPH_DIR"
start_daemon
"$NVRCTL" archive now --config "$CONF" >/dev/null 2>&1
check "... and done after the restart, when the store is back (audited)" \
    deleted_from_archive "$OBJK" k.mp4
stop_daemon

# -- a recording deleted while it is uploaded ------------------------------------
# Retention deletes the oldest recordings, the mover archives the oldest: an
# unlink between the upload and the switch read the header before it said
# archived, and the object stayed in the archive with no file, a deleted
# recording kept there. nvrfsd waits here between the two.
NVRFS_ARCHIVE_UPLOADED_DELAY_MS=6000 start_daemon
head -c 5000000 /dev/urandom > "$MNT/cam1/u.mp4"; touch -d '2 days ago' "$MNT/cam1/u.mp4"
OBJU=$(object_of nvr/pressure 5000000)
"$NVRCTL" archive now --no-wait --config "$CONF" >/dev/null
check "the mover uploads a recording" wait_for 30 object_there "$OBJU"
rm "$MNT/cam1/u.mp4"; rc=$?
check "... which is deleted before the switch (exit $rc)" test $rc -eq 0
check "... its object leaves the archive (audited)" wait_for 30 deleted_from_archive "$OBJU" u.mp4
check_not "... and it is not recorded as archived" bash -c "'$NVRCTL' log show --config '$CONF' --event archive | grep -q u.mp4"
check "... the scrub finds nothing wrong" quiet "$NVRCTL" scrub --config "$CONF"
stop_daemon

# -- a recording recalled, and archived again before its old object's deletion --
# A pass first deletes the objects queued for deletion, then moves files. A
# recall in between queues its old object's deletion; under space pressure
# the same pass archived the file again under the same object name, and the
# queued deletion then took the new object: archived on the members, its
# bytes nowhere. nvrfsd waits here between a pass's deletions and its moves.
archive_config nvr/pressure "archive_after = 365d" "archive_when_free_below = 99%"
NVRFS_ARCHIVE_PASS_DELAY_MS=4000 start_daemon
head -c 3000000 /dev/urandom > "$MNT/cam1/r.mp4"; rsum=$(sha256sum < "$MNT/cam1/r.mp4")
check "under space pressure a new recording is archived" wait_for 30 is_archived 3000000
OBJR=$(object_of nvr/pressure 3000000)
"$NVRCTL" archive now --config "$CONF" >/dev/null  # a pass ends; the next waits after its deletions
sleep 1.5
"$NVRCTL" archive recall "$MNT/cam1/r.mp4" --config "$CONF" >/dev/null; rc=$?
check "it is recalled while a pass waits before its moves (exit $rc)" test $rc -eq 0
check "... and archived again by that pass" wait_for 20 is_archived 3000000
"$NVRCTL" archive now --config "$CONF" >/dev/null
check "... its object is in the archive after the pass's deletions" object_there "$OBJR"
check_not "... no deletion of it was audited" bash -c "'$NVRCTL' log show --config '$CONF' --event archive-delete | grep -q r.mp4"
drop_caches
check "... it reads back byte-identical" bash -c "[ \"\$(sha256sum < '$MNT/cam1/r.mp4')\" = '$rsum' ]"
check "... and scrub finds nothing wrong" quiet "$NVRCTL" scrub --config "$CONF"
stop_daemon
finish
