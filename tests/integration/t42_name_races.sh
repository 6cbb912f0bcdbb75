#!/usr/bin/env bash
# Several processes on the same few names at once: renames back and forth
# between a directory and its subdirectories, a name renamed onto itself,
# files unlinked while open, their directory removed or renamed under them,
# opens and stats of files being deleted (tests/stress/chaos_names.py).
# Found by that script, each failing here on the build before:
# - the mount hung for good within seconds: libfuse 3.14's high-level API
#   deadlocks on a rename of a name onto itself (wire_guard.hpp);
# - a file unlinked while open whose directory was then removed was reported
#   "deleted outside nvrfs" (TamperDetected) at every later scrub: its write
#   record came after its removal, or named it in a directory made later;
# - an open or stat meeting an unlink between the two members alerted
#   MemberInconsistent.
. "$(dirname "$0")/lib.sh"
setup
start_daemon
alerts() { "$NVRCTL" log show --config "$CONF" --event alert 2>/dev/null | grep -cE 'TamperDetected|MemberInconsistent'; }
scrub_clean() {
  local out; out=$("$NVRCTL" scrub --config "$CONF" 2>&1)
  check "$1: $(grep 'scrub finished' <<<"$out")" grep -q ' 0 bad, 0 repaired, 0 without a good copy' <<<"$out"
  grep -E 'namespace|deleted outside' <<<"$out" | sed 's/^/    /'
}

# A recording unlinked while still open, its directory removed, a new
# directory of that name made and renamed, then the recording closed (two
# handles: the one that wrote closes first, while the other keeps it open).
python3 - "$MNT" <<'PY'
import os, sys
top = sys.argv[1]
os.mkdir(f"{top}/cam")
w = os.open(f"{top}/cam/seg.mp4", os.O_CREAT | os.O_WRONLY, 0o644)
r = os.open(f"{top}/cam/seg.mp4", os.O_RDONLY)
os.write(w, os.urandom(300000))
os.unlink(f"{top}/cam/seg.mp4")
os.rmdir(f"{top}/cam")
os.mkdir(f"{top}/cam")
os.rename(f"{top}/cam", f"{top}/old")
os.write(w, os.urandom(1000))
os.close(w)
assert len(os.pread(r, 10, 0)) == 10
os.close(r)
PY
check "a recording written, unlinked and closed in a removed directory" test $? -eq 0
check "... leaves nothing on the members (no orphan kept)" bash -c "! find '$M1/.nvrfs' '$M2/.nvrfs' -path '*orphans*' | grep -q ."
scrub_clean "... and the namespace still matches the audit log"

mkdir "$MNT/sh"
stress="$(dirname "$0")/../stress/chaos_names.py"
pids=()
for i in 1 2 3 4; do
  timeout -s KILL 45 python3 "$stress" "$MNT/sh" "$((10 + i))" 8 > "$T/chaos.$i" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
done_n=$(cat "$T"/chaos.* | grep -c ' ops ')
check "four processes racing the same names for 8 s all finished ($done_n of 4; a hung mount kills them)" test "$done_n" -eq 4
cat "$T"/chaos.* | sed 's/^/    /'
check "... and the mount answers" quiet timeout 10 ls "$MNT/sh"
check "no tamper or inconsistency alert was raised ($(alerts))" test "$(alerts)" -eq 0
"$NVRCTL" log show --config "$CONF" --event alert | grep -E 'TamperDetected|MemberInconsistent' | head -3 | sed 's/^/    /'
scrub_clean "scrub after the races"
check "the members hold the same entries" members_identical
stop_daemon
check "nvrfsd stopped at the unmount" test -z "$(pgrep -f "$NVRFSD --config $CONF")"

# Two closes of one file at once: the kernel tells the daemon of a close
# after close(2) has returned, so the next writer of the file (a log
# appended to, a segment reopened) can write and close before the first
# close is recorded. nvrfsd holds the first close's record here, after it
# has read the file's contents for it; the second writer appends and closes
# meanwhile. The build before appended the older record last: the ledger
# held the file to its first contents and its next open failed (EIO,
# TamperDetected "an older copy was put back on the disks"), as t01 did
# once when the scenarios first ran side by side.
NVRFS_FIRST_RECORD_DELAY_MS=1500 start_daemon
mkdir "$MNT/log"
python3 - "$MNT/log/events.txt" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"line1\n")
os.close(fd)
time.sleep(0.3)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
os.write(fd, b"line2\n")
os.close(fd)
PY
closes() { [ "$("$NVRCTL" log show --config "$CONF" --event write | grep -c /log/events.txt)" -eq 2 ]; }
check "both closes are recorded" wait_for 10 closes
check "... and the file opens and reads back whole" cmp -s <(printf 'line1\nline2\n') "$MNT/log/events.txt"
check "... with no tamper alert ($(alerts))" test "$(alerts)" -eq 0
scrub_clean "... and the namespace matches the audit log"
stop_daemon
finish
