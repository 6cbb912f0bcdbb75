#!/usr/bin/env bash
# A member disk is hostile input (issue 10): what an attacker with the disks
# (offline edits) or a local account does to the members is refused, repaired
# from an authentic copy or alerted, and never followed out of the member.
# Each block reproduces one attack that succeeded before the member-path rules.
. "$(dirname "$0")/lib.sh"
setup
CH=65564; HDR=32   # stored chunk and header size (docs/format.md)

log "1. member roots are root-only; a local account cannot reach stored files"
chmod 755 "$T"   # the account may walk to the members; only their own mode stops it
start_daemon
check "member roots are mode 0700" test "$(stat -c %a "$M1")$(stat -c %a "$M2")" = 700700
check "the mount's root still shows 0755" test "$(stat -c %a "$MNT")" = 755
mkdir "$MNT/pub"; chmod 1777 "$MNT/pub"
check "an unprivileged user records through the mount" su nobody -s /bin/sh -c "echo rec > '$MNT/pub/own.mp4'"
own=$(stored_files "$M1" | head -1)
check_not "... but cannot open its stored file on a member" su nobody -s /bin/sh -c "cat '$own'"
check_not "... nor list a member" su nobody -s /bin/sh -c "ls '$M2'"

log "2. a stored file swapped for a symlink is never followed (chmod 4755 through the mount)"
before_files
cp /bin/true "$T/victim"; chmod 0755 "$T/victim"
echo data > "$MNT/pub/x.mp4"
X1=$(new_stored); X2=$M2/${X1#"$M1"/}
stop_daemon
rm -f "$X2"; ln -s "$T/victim" "$X2"
start_daemon
n0=$(alerts_of TamperDetected)
chmod 4755 "$MNT/pub/x.mp4" 2>/dev/null
check "the link's target did not become set-id" test "$(stat -c %a "$T/victim")" = 755
check "the link on the member was not written through" test -L "$X2"
check "the file still reads from the good member" test "$(cat "$MNT/pub/x.mp4")" = data
check "TamperDetected was raised for the planted link" test "$(alerts_of TamperDetected)" -gt "$n0"
stop_daemon

log "3. .nvrfs/audit.log and superblock.tmp as symlinks to root files"
cp "$KEY" "$T/key.orig"
echo precious > "$T/precious"
rm "$M2/.nvrfs/audit.log"; ln -s "$KEY" "$M2/.nvrfs/audit.log"
ln -s "$T/precious" "$M1/.nvrfs/superblock.tmp"
start_daemon
echo more > "$MNT/pub/after.mp4"
stop_daemon
check "the host key is untouched" cmp -s "$KEY" "$T/key.orig"
check "the file behind superblock.tmp is untouched" test "$(cat "$T/precious")" = precious
check "the audit log on member 2 is a regular file again" test -f "$M2/.nvrfs/audit.log" -a ! -L "$M2/.nvrfs/audit.log"
check "log verify: both chains intact" quiet "$NVRCTL" log verify --config "$CONF"
check "the set mounts again" start_daemon
check "the replaced log was alerted" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q 'audit.log was replaced by a link'"

log "4. repair never spreads a bad chunk: member 1 chunk 0 bad, member 2 one byte short"
before_files
head -c 300000 /dev/urandom > "$T/r.bin"
cp "$T/r.bin" "$MNT/r.mp4"
R1=$(new_stored); R2=$M2/${R1#"$M1"/}
stop_daemon
flipbyte "$R1" $((HDR + 100))
truncate -s $(( $(stat -c %s "$R2") - 1 )) "$R2"
start_daemon
drop_caches
check "the file reads back intact" cmp -s "$MNT/r.mp4" "$T/r.bin"
stop_daemon
check "both stored copies are authentic again (identical)" cmp -s "$R1" "$R2"

log "5. a member made to look stale does not get the other's tampered copies"
start_daemon
before_files
head -c 400000 /dev/urandom > "$T/s.bin"
cp "$T/s.bin" "$MNT/s.mp4"
S1=$(new_stored); S2=$M2/${S1#"$M1"/}
stop_daemon
cp "$M1/.nvrfs/superblock" "$T/sb1.old"
start_daemon; stop_daemon                        # the set moves on (events grow)
flipbyte "$S2" $((HDR + 2 * CH + 7))             # tamper member 2's copy ...
cp "$T/sb1.old" "$M1/.nvrfs/superblock"          # ... and replay member 1's older superblock
start_daemon
clean() { "$NVRCTL" status --config "$CONF" | head -1 | grep -q ': clean$'; }
wait_for 30 clean
check "the stale member was rebuilt (set clean)" clean
check "... by the verifying rebuild" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q 'by a verifying rebuild'"
drop_caches
check "the recording reads back intact" cmp -s "$MNT/s.mp4" "$T/s.bin"
check "a repairing scrub finds member 2's bad chunk" bash -c "'$NVRCTL' scrub --repair --config '$CONF' | grep -qE ' [1-9][0-9]* bad, [1-9][0-9]* repaired'"
stop_daemon
check "member 1 kept its authentic copy, member 2 was repaired from it" cmp -s "$S1" "$S2"

log "6. a directory IV altered on member 1 only, a stored name altered on member 1"
start_daemon
mkdir "$MNT/cam1"; echo one > "$MNT/cam1/a.mp4"; echo two > "$MNT/cam1/b.mp4"
C1=$(dirname "$(stored_files "$M1" | xargs ls -t | head -1)")
stop_daemon
flipbyte "$C1/.nvrfs.diriv" 3
start_daemon
check "the directory still lists both recordings" test "$(ls "$MNT/cam1" | wc -l)" = 2
check "they still read" test "$(cat "$MNT/cam1/a.mp4")" = one
echo three > "$MNT/cam1/c.mp4"
stop_daemon
check "the IV was repaired on member 1" cmp -s "$C1/.nvrfs.diriv" "$M2/${C1#"$M1"/}/.nvrfs.diriv"
victim=$(ls "$C1" | grep -v nvrfs | head -1)
mv "$C1/$victim" "$C1/AAAA$victim"
start_daemon
check "a name altered on member 1 does not hide the file" test "$(ls "$MNT/cam1" | wc -l)" = 3
check "... the alteration is alerted" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q 'not valid nvrfs names'"
check "... and every recording still reads" bash -c "cat '$MNT'/cam1/*.mp4 >/dev/null"
check "scrub --repair restores it on member 1" bash -c "'$NVRCTL' scrub --repair --config '$CONF' | grep -qE ' [1-9][0-9]* bad, [1-9][0-9]* repaired'"
stop_daemon
check "... the altered entry is kept aside in .nvrfs/quarantine" test "$(ls "$M1/.nvrfs/quarantine" | wc -l)" = 1
check "... and both members hold the same stored tree again" diff -r --exclude=superblock --exclude=quarantine --exclude=audit.log "$M1" "$M2"

log "7. a file cut to its header (or header + 28 bytes) on both members is no empty file"
start_daemon
before_files
echo "evidence" > "$MNT/e.mp4"
E1=$(new_stored); E2=$M2/${E1#"$M1"/}
stop_daemon
for cut in 32 60; do
  truncate -s $cut "$E1"; truncate -s $cut "$E2"
  start_daemon
  size=$(stat -c %s "$MNT/e.mp4" 2>&1)
  check "cut to $cut bytes: stat does not show an empty file ($size)" test "$size" != 0
  out=$(cat "$MNT/e.mp4" 2>&1); rc=$?
  check "cut to $cut bytes: reading fails with EIO ($out)" bash -c "[ $rc -ne 0 ] && grep -q 'Input/output error' <<<'$out'"
  stop_daemon
done
check "... and it was alerted" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q 'e.mp4.*not authentic'"

log "8. one member's superblock corrupt: refused, or degraded with an alert"
cp "$M2/.nvrfs/superblock" "$T/sb2"
flipbyte "$M2/.nvrfs/superblock" 10
out=$(timeout 10 "$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?   # a regression would mount and block
check "without degraded: refused with a clear message (exit $rc: $out)" bash -c "[ $rc -eq 1 ] && ! mountpoint -q '$MNT'"
echo "degraded = yes" >> "$CONF"
start_daemon
check "with degraded = yes: mounted, recordings readable" cmp -s "$MNT/r.mp4" "$T/r.bin"
check "... and the bad superblock is alerted" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q 'superblock'"
stop_daemon
cp "$T/sb2" "$M2/.nvrfs/superblock"
sed -i '/^degraded = yes$/d' "$CONF"

log "9. looser member roots are tightened; a root owned by another account is refused"
chmod 755 "$M1"
start_daemon
check "a 0755 member root is set back to 0700" test "$(stat -c %a "$M1")" = 700
stop_daemon
chown nobody "$M2"
out=$(timeout 10 "$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?   # a regression would mount and block
check "a member owned by another account is refused (exit $rc: $out)" bash -c "[ $rc -eq 1 ] && grep -q 'owned by uid' <<<'$out'"
chown root "$M2"
finish
