#!/usr/bin/env bash
# Issue 12, the namespace: what the disks' attacker does to evidence beyond a
# flipped byte — a recording deleted on both members, two recordings' stored
# contents swapped (in one directory and across directories), two
# directories swapped, a recording put back as an older copy of itself —
# authenticates chunk by chunk, but scrub compares the namespace with the
# audit log (the ledger: file id, size and last tag at each close, the log's
# head anchored on the host) and reports each, exit 1, TamperDetected; and
# before any scrub, open() of a file that is not in its place fails with EIO
# (alerted) instead of serving it under the wrong name.
# Legitimate work (rename of a finished segment, a playlist replaced while
# open, truncate, unlink, writing during the scrub, kill -9 mid-write, a
# member failure and rebuild) reports nothing. The host keeps a checkpoint
# of the ledger; a damaged one is ignored, said, and written anew.
. "$(dirname "$0")/lib.sh"
setup
start_daemon
mkdir "$MNT/cam1" "$MNT/cam2"
put() { head -c "$2" /dev/urandom > "$MNT/$1"; }
put cam1/a.mp4 100000; put cam1/b.mp4 150000; put cam2/c.mp4 120000; put cam1/d.mp4 200000
stop_daemon
# The stored file of a plaintext size (sizes are distinct on purpose).
stored_of() { python3 - "$1" "$2" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
want = 32 + (n + 65535) // 65536 * 28 + n
for d, _, fs in os.walk(root):
    if "/.nvrfs" in d + "/":
        continue
    for f in fs:
        p = os.path.join(d, f)
        if os.path.getsize(p) == want:
            print(os.path.relpath(p, root)); sys.exit(0)
sys.exit(1)
PY
}
D_OLD=$(stored_of "$M1" 200000)
for m in "$M1" "$M2"; do cp -a "$m/$D_OLD" "$T/d.old.$(basename "$m")"; done
start_daemon
head -c 100000 /dev/urandom >> "$MNT/cam1/d.mp4"
stop_daemon
snap() { rm -rf "$T/p"; mkdir "$T/p"; cp -a "$M1" "$M2" "$T/state" "$T/p/"; }
restore() { rm -rf "$M1" "$M2" "$T/state"; cp -a "$T/p/m1" "$T/p/m2" "$T/p/state" "$T/"; }
snap
# scrub_out [PATH...]: mount, read each PATH (cat; its result goes to
# $T/reads as "PATH eio|ok|other"), scrub, unmount.
scrub_out() {
    start_daemon; : > "$T/reads"
    for p in "$@"; do
        if cat "$MNT/$p" > /dev/null 2> "$T/read.err"; then echo "$p ok"
        elif grep -q "Input/output error" "$T/read.err"; then echo "$p eio"
        else echo "$p other: $(cat "$T/read.err")"; fi >> "$T/reads"
    done
    "$NVRCTL" scrub --config "$CONF" > "$T/scrub.out" 2>&1; echo $? > "$T/scrub.rc"; stop_daemon
}
refused() { for p in "$@"; do grep -qx "$p eio" "$T/reads" || { cat "$T/reads"; return 1; }; done; }
alerted() { grep -q "$1" <("$NVRCTL" log show --config "$CONF" --event alert 2>/dev/null); }
A=$(stored_of "$M1" 100000); B=$(stored_of "$M1" 150000); C=$(stored_of "$M1" 120000)

scrub_out
check "the set as written: scrub clean (exit $(cat "$T/scrub.rc"))" test "$(cat "$T/scrub.rc")" = 0

restore; for m in "$M1" "$M2"; do rm "$m/$A"; done
scrub_out
check "a recording deleted on both members: scrub exit 1" test "$(cat "$T/scrub.rc")" = 1
check "... names it as deleted outside nvrfs" alerted "/cam1/a.mp4: deleted outside nvrfs"
check "... and says so in its summary" grep -q "1 recording(s) deleted outside nvrfs" "$T/scrub.out"

restore; for m in "$M1" "$M2"; do mv "$m/$A" "$m/$A.x"; mv "$m/$B" "$m/$A"; mv "$m/$A.x" "$m/$B"; done
scrub_out cam1/a.mp4 cam1/b.mp4 cam1/d.mp4
check "two recordings swapped in one directory: both refused at open (EIO)" refused cam1/a.mp4 cam1/b.mp4
check "... the recording beside them reads" grep -qx "cam1/d.mp4 ok" "$T/reads"
check "... alerted at open, before any scrub" alerted "/cam1/a.mp4: holds another file's contents.*the file is not opened"
check "two recordings swapped in one directory: scrub exit 1" test "$(cat "$T/scrub.rc")" = 1
check "... both named as holding another file's contents" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -v 'is not opened' | grep -c \"holds another file's contents\" | grep -qx 2"

restore; cdir=$(dirname -- "$C"); adir=$(dirname -- "$A")
for m in "$M1" "$M2"; do mv -- "$m/$A" "$m/$cdir/x.tmp"; mv -- "$m/$C" "$m/$A"; mv -- "$m/$cdir/x.tmp" "$m/$C"; done
scrub_out cam1/a.mp4 cam2/c.mp4
check "... both refused at open (EIO)" refused cam1/a.mp4 cam2/c.mp4
check "recordings swapped across directories (stored names kept): detected, exit $(cat "$T/scrub.rc")" test "$(cat "$T/scrub.rc")" = 1
check "... /cam2/c.mp4 holds another file's contents" alerted "/cam2/c.mp4: holds another file's contents"

restore
for m in "$M1" "$M2"; do mv -- "$m/$adir" "$m/swap.tmp"; mv -- "$m/$cdir" "$m/$adir"; mv -- "$m/swap.tmp" "$m/$cdir"; done
scrub_out cam1/c.mp4 cam2/a.mp4
check "... cam2's file shown under cam1 and cam1's under cam2: refused at open (EIO)" refused cam1/c.mp4 cam2/a.mp4
check "two directories swapped: detected, exit $(cat "$T/scrub.rc")" test "$(cat "$T/scrub.rc")" = 1
check "... cam1's recordings reported deleted" alerted "/cam1/a.mp4: deleted outside nvrfs"
check "... and cam2's file under cam1 never recorded there" alerted "/cam1/c.mp4: the audit log never recorded a file here"

restore; D=$(stored_of "$M1" 300000)
for m in "$M1" "$M2"; do cp "$T/d.old.$(basename "$m")" "$m/$D"; done
scrub_out cam1/d.mp4
check "... refused at open (EIO)" refused cam1/d.mp4
check "a recording put back as an older copy of itself: detected, exit $(cat "$T/scrub.rc")" test "$(cat "$T/scrub.rc")" = 1
check "... named as not the file recorded at its last close" alerted "/cam1/d.mp4: is not the file the audit log recorded at its last close"

# Legitimate work raises nothing.
restore
start_daemon
mv "$MNT/cam1/a.mp4" "$MNT/cam1/a-final.mp4"
echo "#EXTM3U v1" > "$MNT/cam2/live.m3u8"
exec 5<"$MNT/cam2/live.m3u8"                      # a web server reading the playlist
echo "#EXTM3U v2" > "$MNT/cam2/live.m3u8.tmp"; mv "$MNT/cam2/live.m3u8.tmp" "$MNT/cam2/live.m3u8"
exec 5<&-
truncate -s 50000 "$MNT/cam1/b.mp4"; rm "$MNT/cam2/c.mp4"; ln -s cam1/a-final.mp4 "$MNT/latest"
echo x > "$MNT/cam1/grown.bin"; fallocate -l 300000 "$MNT/cam1/grown.bin"   # grown by fallocate alone
( for i in $(seq 40); do head -c 300000 /dev/urandom > "$MNT/cam2/rec$i.mp4"; sleep 0.05; done ) &
W=$!
"$NVRCTL" scrub --config "$CONF" > "$T/scrub.out" 2>&1; rc=$?
kill "$W" 2>/dev/null; while kill -0 "$W" 2>/dev/null; do sleep 0.1; done
check "rename, a playlist replaced while open, truncate, fallocate, unlink, symlink and writes during the scrub: clean (exit $rc)" test $rc -eq 0
check "... and every file opens and reads (no false refusal)" bash -c "cat '$MNT'/cam1/* '$MNT'/cam2/* '$MNT/latest' > /dev/null"
( for j in $(seq 200); do head -c 100000 /dev/urandom > "$MNT/cam1/k$j.mp4" || break; done ) 2>/dev/null &
W=$!; sleep 1; kill -9 "$DAEMON_PID"; kill "$W" 2>/dev/null; umount -l "$MNT"; DAEMON_PID=
start_daemon
wait_for 30 bash -c "'$NVRCTL' status --config '$CONF' --json | grep -q '\"running\": false'"
SP=$T/spare; mkdir "$SP"; quiet "$NVRCTL" spare add --config "$CONF" "$SP"; quiet "$NVRCTL" member fail --config "$CONF" "$M2"
wait_for 60 is_clean
"$NVRCTL" scrub --config "$CONF" > "$T/scrub.out" 2>&1; rc=$?
check "after kill -9 mid-write and a member failure with rebuild: scrub clean (exit $rc)" test $rc -eq 0
echo "appended" >> "$MNT/cam1/a-final.mp4"   # a closed recording appended to again ...
exec 6>>"$MNT/cam1/a-final.mp4"; echo more >&6
kill -9 "$DAEMON_PID"; exec 6>&-; umount -l "$MNT"; DAEMON_PID=   # ... and the daemon killed while it is open
start_daemon
wait_for 30 bash -c "'$NVRCTL' status --config '$CONF' --json | grep -q '\"running\": false'"
stop_daemon; start_daemon
"$NVRCTL" scrub --config "$CONF" > "$T/scrub.out" 2>&1; rc=$?
check "a file grown past its last record in a crash: the next clean scrub is clean too (exit $rc)" test $rc -eq 0
check "... and it opens and reads on the clean mount" bash -c "tail -c 5 '$MNT/cam1/a-final.mp4' | grep -q more"
check "... and no namespace finding since the legitimate work began" bash -c "! '$NVRCTL' log show --config '$CONF' --event alert | grep -q 'never recorded a file here\|deleted outside nvrfs.*\\(a-final\\|rec\\|k[0-9]\\)\|holds another file.*\\(a-final\\|rec\\|k[0-9]\\|live\\)'"
# The ledger's checkpoint on the host: a mount replays only the records after
# it; a damaged one is ignored (said) and the whole log replayed.
stop_daemon
check "the host keeps a checkpoint of the ledger beside its anchor" bash -c "ls '$T'/state/*.ledger"
sed -i 's/"last_seq"/"last_seX"/' "$T"/state/*.ledger
start_daemon
check "a damaged checkpoint is ignored and said so" alerted "LedgerCheckpointIgnored.*fails its MAC"
check "... files still open and read" bash -c "cat '$MNT'/cam1/* > /dev/null"
stop_daemon; start_daemon
check "... and the next unmount wrote a good one again (no second LedgerCheckpointIgnored)" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -c LedgerCheckpointIgnored | grep -qx 1"
finish
