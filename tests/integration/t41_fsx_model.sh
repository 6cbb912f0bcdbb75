#!/usr/bin/env bash
# POSIX under random use, in the manner of fsx: several descriptors on each
# file (read-only, write-only with FUSE direct I/O, read-write, append),
# pwrite, shared mmap, truncate, fallocate, rename over and unlink while open,
# every read and size compared with a model (fsx_model.py; the model is first
# checked against a plain directory). Then a recorder's retention pattern —
# segments written and deleted while another process lists the directory —
# must raise no alert: a namespace change reaches the members one after the
# other, and a listing in between is no inconsistency. Both found by this
# test: a fallocate through a renamed file recorded under its old name (the
# ledger then refused the next file created there as tampered), and listings
# alerting MemberInconsistent for a segment being deleted.
# test-slow: 100
. "$(dirname "$0")/lib.sh"
setup_loop 1G
start_daemon
FSX=$(dirname "$0")/fsx_model.py
# NVRFS_FSX_PERCENT: the operations each run makes, in percent of the counts
# below (CI's ASan pass runs half: each costs about twice as much there).
scaled() { echo $(( $1 * ${NVRFS_FSX_PERCENT:-100} / 100 )); }
alerts() { "$NVRCTL" log show --config "$CONF" --event alert 2>/dev/null | grep -cE 'TamperDetected|MemberInconsistent'; }
# under_fault OPS "FAULT COMMAND" WHAT SEEDS...: concurrent runs, the fault 3 s in.
under_fault() {
  local ops; ops=$(scaled "$1"); local fault=$2 what=$3; shift 3
  local pids=() bad=0 s p
  for s in "$@"; do
    mkdir "$MNT/s$s"
    python3 "$FSX" "$MNT/s$s" --ops "$ops" --seed "$s" --save "$T/s$s.json" > "$T/fsx$s.out" 2>&1 & pids+=($!)
  done
  sleep 3
  eval "$fault"
  for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
  check "$# concurrent runs as the model while $what ($bad failed)" test "$bad" -eq 0
  [ "$bad" -eq 0 ] || cat "$T"/fsx*.out | sed 's/^/    /'
}
# no_new_alerts N0 WHAT: no tamper or inconsistency alert since there were N0.
no_new_alerts() {
  check "no tamper or inconsistency alert from $2 ($1 before, $(alerts) after)" test "$(alerts)" -eq "$1"
  [ "$(alerts)" -eq "$1" ] || "$NVRCTL" log show --config "$CONF" --event alert | grep -E 'TamperDetected|MemberInconsistent' | head -5 | sed 's/^/    /'
}

mkdir "$T/ref"
out=$(python3 "$FSX" "$T/ref" --ops 2000 --seed 1 2>&1)
check "the model agrees with a plain directory: $out" test $? -eq 0

for s in 1 2 3 4; do
  mkdir "$MNT/s$s"
  out=$(python3 "$FSX" "$MNT/s$s" --ops "$(scaled 3000)" --seed "$s" --save "$T/s$s.json" 2>&1); rc=$?
  check "seed $s: every read and size as the model (exit $rc)" test $rc -eq 0
  [ $rc -eq 0 ] || sed 's/^/    /' <<<"$out"
done
check "no tamper or inconsistency alert was raised by any of it ($(alerts))" test "$(alerts)" -eq 0

# Retention while listing: 4 MiB segments written and deleted, for 8 s.
mkdir "$MNT/cam"
n0=$(alerts)
python3 - "$MNT/cam" > "$T/segs" <<'PY' &
import os, sys, time
end, i = time.time() + 8, 0
while time.time() < end:
    p = f"{sys.argv[1]}/seg{i % 20}.mp4"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644); os.write(fd, b"v" * (4 << 20)); os.close(fd)
    os.unlink(p); i += 1
print(i)
PY
segs=$!
listed=$(python3 -c "
import os, sys, time
end, n = time.time() + 8, 0
while time.time() < end: os.listdir(sys.argv[1]); n += 1
print(n)" "$MNT/cam")
wait "$segs"; rc=$?
check "$(cat "$T/segs") segments were written and deleted while $listed listings ran (exit $rc)" test $rc -eq 0 -a "${listed:-0}" -gt 100
check "... and no listing alerted a member inconsistency ($n0 alerts before, $(alerts) after)" test "$(alerts)" -eq "$n0"

stop_daemon
start_daemon
for s in 1 2 3 4; do
  check "seed $s: what it left reads the same after a remount" python3 "$FSX" "$MNT/s$s" --check "$T/s$s.json"
done

# A member fails under four concurrent runs (its ext4 turns read-only) and
# comes back stale after an fsck: what it missed — files cut, created again,
# holes where it held data — is resynced from the survivor. The build before
# let the stale copy's length win and kept its bytes inside holes: false
# TamperDetected alerts, and bad copies behind a "clean" rebuild.
n0=$(alerts)
under_fault 4000 'loop_fs_error "$M2"' "a member failed under them" 5 6 7 8
check "the member's failure was alerted" wait_for 5 has_alert MemberFailed
stop_daemon
dev=$(findmnt -n -o SOURCE "$M2"); umount "$M2"; fsck.ext4 -fy "$dev" >/dev/null 2>&1; mount "$dev" "$M2"
start_daemon
check "the returning member is resynced" has_alert MemberResynced
check "... and its rebuild finishes" wait_for 60 has_alert RebuildFinished
for s in 5 6 7 8; do
  check "seed $s: reads as it was left" python3 "$FSX" "$MNT/s$s" --check "$T/s$s.json"
done
no_new_alerts "$n0" "the resync"
check "the members hold the same bytes" members_identical
out=$("$NVRCTL" scrub --config "$CONF" 2>&1)
check "scrub finds every copy good: $(tail -1 <<<"$out")" grep -q ' 0 bad, 0 repaired, 0 without a good copy' <<<"$out"

# The administrator fails a member under four concurrent runs and a hot spare
# is rebuilt while they go on: renames carry names from where the walk has
# not been to where it has been, and directories vanish under it. The build
# before left the new member without those files (MemberInconsistent at
# every later access) or stopped the rebuild (RebuildFailed, still degraded).
mkdir "$T/spare"
"$NVRCTL" spare add "$T/spare" --config "$CONF" >/dev/null
n0=$(alerts)
under_fault 5000 '"$NVRCTL" member fail "$M2" --config "$CONF" >/dev/null' "a spare was rebuilt under them" 9 10 11 12
check "the spare's rebuild finishes" wait_for 60 has_alert RebuildFinished.*spare
check_not "... and did not stop" has_alert RebuildFailed
check "the set is clean again" quiet "$NVRCTL" status --config "$CONF"
no_new_alerts "$n0" "the rebuild"
check "the new member holds the same bytes as the survivor" diff -r --exclude=superblock "$M1" "$T/spare"
out=$("$NVRCTL" scrub --config "$CONF" 2>&1)
check "scrub finds every copy good: $(tail -1 <<<"$out")" grep -q ' 0 bad, 0 repaired, 0 without a good copy' <<<"$out"
finish
