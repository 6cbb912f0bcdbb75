#!/usr/bin/env bash
# Issue 14, first part: the recovery key. A recorder's system disk dies and
# takes the host key along; with a recovery key made while it worked, the
# recovery passphrase opens the set again and binds it to a new host key,
# recordings untouched. A wrong passphrase, an altered recovery record or a
# removed recovery key change nothing; the old host key stops working; every
# key operation is audited and alerted.
. "$(dirname "$0")/lib.sh"
setup
start_daemon
mkdir "$MNT/cam1"
for i in 1 2 3; do head -c 300000 /dev/urandom > "$MNT/cam1/seg$i.mp4"; done
sums=$(cd "$MNT" && sha256sum cam1/*)
printf 'correct horse battery staple\n' > "$T/recovery.pass"; chmod 600 "$T/recovery.pass"
printf 'not the passphrase at all\n' > "$T/wrong.pass"
printf 'short\n' > "$T/short.pass"
check_not "a passphrase under 12 characters is refused" quiet "$NVRCTL" key recovery create --config "$CONF" --passphrase-file "$T/short.pass"
check "key recovery create (set mounted) exits 0" quiet "$NVRCTL" key recovery create --config "$CONF" --passphrase-file "$T/recovery.pass"
check "... a recovery record on both members" test -s "$M1/.nvrfs/recovery" -a -s "$M2/.nvrfs/recovery"
check "... audited and alerted" bash -c "'$NVRCTL' log show --config '$CONF' | grep -q 'key-recovery-create' && '$NVRCTL' log show --config '$CONF' --event alert | grep -q KeyRecoveryCreated"
stop_daemon

# The system disk dies: the host key is gone.
cp "$KEY" "$T/old.key"; rm -f "$KEY"
check_not "without the host key the set does not mount" quiet timeout 20 "$NVRFSD" --config "$CONF" "$MNT"
out=$(timeout 20 "$NVRFSD" --config "$CONF" --recovery-passphrase-file "$T/wrong.pass" -f "$MNT" 2>&1); rc=$?
check "nvrfsd with a wrong recovery passphrase is refused (exit $rc)" bash -c "[ $rc -ne 0 ] && grep -q 'recovery passphrase does not open' <<<\"\$1\"" _ "$out"
start_daemon --recovery-passphrase-file "$T/recovery.pass"
check "nvrfsd --recovery-passphrase-file mounts the set without its host key; recordings intact" bash -c "cd '$MNT' && [ \"\$(sha256sum cam1/*)\" = '$sums' ]"
check "... and says so (MountedWithRecoveryKey)" bash -c "'$NVRCTL' alerts --config '$CONF' --json 2>/dev/null | grep -q MountedWithRecoveryKey"
stop_daemon
sb_before=$(cat "$M1/.nvrfs/superblock" "$M2/.nvrfs/superblock" | sha256sum)
out=$("$NVRCTL" key recover --config "$CONF" --passphrase-file "$T/wrong.pass" --host-key "$T/new.key" 2>&1); rc=$?
check "a wrong passphrase is refused (exit $rc) with a clear message" bash -c "[ $rc -eq 1 ] && grep -q 'recovery passphrase does not open' <<<\"$out\""
check "... nothing written: superblocks unchanged, no new key" bash -c "[ \"\$(cat '$M1/.nvrfs/superblock' '$M2/.nvrfs/superblock' | sha256sum)\" = '$sb_before' ] && [ ! -e '$T/new.key' ]"
cp "$M1/.nvrfs/recovery" "$T/rec1"; cp "$M2/.nvrfs/recovery" "$T/rec2"
for m in "$M1" "$M2"; do flipbyte "$m/.nvrfs/recovery" 60; done
check_not "an altered recovery record is refused" quiet "$NVRCTL" key recover --config "$CONF" --passphrase-file "$T/recovery.pass" --host-key "$T/new.key"
cp "$T/rec1" "$M1/.nvrfs/recovery"; cp "$T/rec2" "$M2/.nvrfs/recovery"
out=$("$NVRCTL" key recover --config "$CONF" --passphrase-file "$T/recovery.pass" --host-key "$T/new.key" 2>&1); rc=$?
check "the recovery passphrase binds the set to a new host key (exit $rc)" test $rc -eq 0
check "... the new key is 0600" test "$(stat -c %a "$T/new.key")" = 600
check "... and the configuration names it" grep -q "^host_key = $T/new.key" "$CONF"
start_daemon
check "the set mounts with the new key and every recording is byte-identical" bash -c "cd '$MNT' && [ \"\$(sha256sum cam1/*)\" = '$sums' ]"
check "... the recovery was audited and alerted" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q KeyRecovered"
check "... the log still verifies" quiet "$NVRCTL" log verify --config "$CONF"
stop_daemon
sed -i "s|^host_key = .*|host_key = $T/old.key|" "$CONF"
out=$(timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?
check "the old host key no longer opens the set (exit $rc)" bash -c "[ $rc -ne 0 ] && grep -qi 'different host key' <<<\"$out\""
sed -i "s|^host_key = .*|host_key = $T/new.key|" "$CONF"
check "key recovery remove exits 0" quiet "$NVRCTL" key recovery remove --config "$CONF"
check "... no member holds a recovery record" test ! -e "$M1/.nvrfs/recovery" -a ! -e "$M2/.nvrfs/recovery"
out=$("$NVRCTL" key recover --config "$CONF" --passphrase-file "$T/recovery.pass" --host-key "$T/third.key" 2>&1); rc=$?
check "... then recover is refused: no recovery key (exit $rc)" bash -c "[ $rc -eq 1 ] && grep -q 'no member holds a recovery key' <<<\"$out\" && [ ! -e '$T/third.key' ]"
check "removal audited and alerted (written offline into the log)" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q KeyRecoveryRemoved"
# A rebuilt member gets the recovery key too: any one member is enough.
quiet "$NVRCTL" key recovery create --config "$CONF" --passphrase-file "$T/recovery.pass"
start_daemon
SP=$T/spare; mkdir "$SP"
quiet "$NVRCTL" spare add --config "$CONF" "$SP"; quiet "$NVRCTL" member fail --config "$CONF" "$M2"
wait_for 60 is_clean
check "a spare rebuilt after a member failed holds the recovery record" cmp -s "$M1/.nvrfs/recovery" "$SP/.nvrfs/recovery"
stop_daemon
# Rotation: a new host key, recordings untouched; the old key stops working.
cp "$T/new.key" "$T/before-rotate.key"
sums=$(start_daemon; cd "$MNT" && sha256sum cam1/*; cd /; stop_daemon)
start_daemon
check_not "key rotate refuses while the set is mounted" quiet "$NVRCTL" key rotate --config "$CONF"
stop_daemon
check "key rotate exits 0" quiet "$NVRCTL" key rotate --config "$CONF"
check "... the key file changed, mode 0600, nothing pending" bash -c "! cmp -s '$T/new.key' '$T/before-rotate.key' && [ \"\$(stat -c %a '$T/new.key')\" = 600 ] && [ ! -e '$T/new.key.next' ]"
start_daemon
check "... the set mounts with it, recordings byte-identical" bash -c "cd '$MNT' && [ \"\$(sha256sum cam1/*)\" = '$sums' ]"
check "... audited and alerted" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q HostKeyRotated"
stop_daemon
sed -i "s|^host_key = .*|host_key = $T/before-rotate.key|" "$CONF"
check_not "... the key from before the rotation no longer opens it" quiet timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT"
sed -i "s|^host_key = .*|host_key = $T/new.key|" "$CONF"
# kill -9 half-way: one superblock under the next key, the rest under the old.
cp "$T/new.key" "$T/before-kill.key"
NVRFS_KEY_ROTATE_DELAY_MS=3000 "$NVRCTL" key rotate --config "$CONF" > /dev/null 2>&1 &
R=$!
wait_for 10 test -e "$T/new.key.next"; sleep 1.5; kill -9 "$R"; while kill -0 "$R" 2>/dev/null; do sleep 0.1; done
check "killed half-way: the next key is pending" test -e "$T/new.key.next"
out=$(timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?
check "... nvrfsd will not open the set yet and says what to do (exit $rc)" bash -c "[ $rc -ne 0 ] && grep -q 'run .nvrctl key rotate. to finish' <<<\"\$1\"" _ "$out"
check "... key rotate run again finishes it" bash -c "'$NVRCTL' key rotate --config '$CONF' | grep -q 'interrupted rotation finished'"
start_daemon
check "... and the set opens with the new key, recordings byte-identical" bash -c "cd '$MNT' && [ \"\$(sha256sum cam1/*)\" = '$sums' ]"
stop_daemon
finish
