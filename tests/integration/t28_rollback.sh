#!/usr/bin/env bash
# Issue 12, the host anchor: what must not go backwards is kept outside the
# disks. Offline edits of both members — an older copy of the whole set, the
# audit log deleted or its last records cut — are refused at mount with a
# clear error, alerted (hook and log) and named by `log verify`, until an
# administrator accepts them (audited); legitimate operation (kill -9 during
# writes, a member failure and rebuild, restarts) raises no false alarm.
. "$(dirname "$0")/lib.sh"
setup
cat >> "$CONF" <<CFG
alert_hook = echo "\$NVRFS_ALERT|\$NVRFS_DETAIL" >> $T/hook.out
CFG
start_daemon
mkdir "$MNT/cam1"; echo one > "$MNT/cam1/a.mp4"
stop_daemon
snap() { rm -rf "$T/s1" "$T/s2"; cp -a "$M1" "$T/s1"; cp -a "$M2" "$T/s2"; }
restore() { rm -rf "$M1" "$M2"; cp -a "$T/s1" "$M1"; cp -a "$T/s2" "$M2"; }
try_mount() { timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT" > "$T/try.out" 2>&1; echo $?; }
snap
start_daemon
echo two > "$MNT/cam1/b.mp4"; head -c 2000000 /dev/urandom > "$MNT/cam1/c.mp4"
check "status shows the host anchor, that it matched, and its age" bash -c "'$NVRCTL' status --config '$CONF' | grep -q '^host anchor: the members matched it at mount; now at audit record #[0-9]*.*written [0-9]* s ago'"
stop_daemon

# 1. The whole set rolled back to an older copy of both members.
restore
rc=$(try_mount)
check "an older copy of both members is refused (exit $rc: 3, not restarted by the unit)" test "$rc" -eq 3
check "... saying why: $(head -c 160 "$T/try.out")..." grep -q "rollback detected: the members' event counter is .* this host saw" "$T/try.out"
check "... and what to do" grep -q "nvrctl set accept-rollback" "$T/try.out"
check "... alerted through the hook (RollbackDetected)" grep -q "^RollbackDetected|" "$T/hook.out"
check "... and nothing is mounted" bash -c "! mountpoint -q '$MNT'"
out=$("$NVRCTL" log verify --config "$CONF" 2>&1); rc=$?
check "log verify exits 1 and names the missing records (exit $rc)" test $rc -eq 1
check "... $(grep -m1 -o 'records #[0-9]*\.\.#[0-9]* are missing' <<<"$out")" grep -q "records #[0-9]*\.\.#[0-9]* are missing" <<<"$out"
check "set accept-rollback is taken" quiet "$NVRCTL" set accept-rollback --config "$CONF"
start_daemon
check "after it, the set mounts as it was (b.mp4 gone, a.mp4 there)" test -f "$MNT/cam1/a.mp4" -a ! -e "$MNT/cam1/b.mp4"
audit_has() { audit_json | python3 -c "import json,sys; sys.exit(0 if any($1 for r in json.load(sys.stdin)) else 1)"; }
check "... the acceptance is audited with what was found" audit_has "r.get('event') == 'accept-rollback' and 'event counter' in r.get('found', '')"
check "... and alerted (RollbackAccepted)" has_alert RollbackAccepted
echo three > "$MNT/cam1/d.mp4"
stop_daemon
start_daemon
check "the next mount needs no acceptance (the host's record followed)" mountpoint -q "$MNT"
stop_daemon

# 2. The audit log deleted on both members (a fresh log would verify).
snap
for m in "$M1" "$M2"; do rm -f "$m/.nvrfs/audit.log"; done
rc=$(try_mount)
check "an audit log deleted on both members is refused (exit $rc)" test "$rc" -eq 3
check "... records #1..#N are missing" grep -q "records #1\.\.#[0-9]* are missing" "$T/try.out"
restore

# 3. The last records cut off both logs (the chain alone cannot tell).
cut_records() {  # cut_records K: drop the last K frames of both logs (frames end in their length)
  for m in "$M1" "$M2"; do python3 - "$m/.nvrfs/audit.log" "$1" <<'PY'
import struct, sys
p, k = sys.argv[1], int(sys.argv[2])
b = open(p, 'rb').read()
end = len(b)
for _ in range(k):
    (n,) = struct.unpack('>I', b[end - 4:end])
    end -= n + 8
open(p, 'r+b').truncate(end)
PY
  done
}
cut_records 3
rc=$(try_mount)
check "a log cut on both members is refused (exit $rc)" test "$rc" -eq 3
check "... naming the missing range: $(grep -o 'records #[0-9]*\.\.#[0-9]* are missing' "$T/try.out")" grep -q "records #[0-9]*\.\.#[0-9]* are missing" "$T/try.out"
restore

# 4. The host record itself edited: refused, not guessed.
cp "$T/state/"*.anchor "$T/anchor.good"
sed -i 's/"events":[0-9]*/"events":1/' "$T/state/"*.anchor
rc=$(try_mount)
check "an edited host record is refused (exit $rc): $(head -c 120 "$T/try.out")" grep -q "fails its MAC" "$T/try.out"
check "... with exit status 3" test "$rc" -eq 3
cp "$T/anchor.good" "$T/state/"*.anchor

# 5. No false alarms: kill -9 during writes, three times; a member failure and rebuild.
n_before=$(grep -c "^RollbackDetected" "$T/hook.out")
for i in 1 2 3; do
  start_daemon
  ( for j in $(seq 200); do head -c 100000 /dev/urandom > "$MNT/cam1/k$i-$j.mp4" || break; done ) 2>/dev/null &
  W=$!
  sleep 1.5
  kill -9 "$DAEMON_PID"; kill "$W" 2>/dev/null; umount -l "$MNT"; DAEMON_PID=
  sleep 0.2
done
start_daemon
check "three kill -9 during writes: every restart mounts, no RollbackDetected" test "$(grep -c "^RollbackDetected" "$T/hook.out")" -eq "$n_before"
SP=$T/spare; mkdir "$SP"; quiet "$NVRCTL" spare add --config "$CONF" "$SP"
quiet "$NVRCTL" member fail --config "$CONF" "$M2"
check "a member failure and the spare's rebuild complete" wait_for 60 is_clean
quiet "$NVRCTL" member remove --config "$CONF" "$M2"
stop_daemon
start_daemon
check "... and the restart after it raises no RollbackDetected" test "$(grep -c "^RollbackDetected" "$T/hook.out")" -eq "$n_before"
check "... and log verify agrees with the host's record" quiet "$NVRCTL" log verify --config "$CONF"
stop_daemon
rm -f "$T/state/"*.anchor
start_daemon
check "a host without a record of the set makes one (HostAnchorCreated)" wait_for 5 has_alert HostAnchorCreated
check "... and writes it" test -s "$(ls "$T/state/"*.anchor)"
finish
