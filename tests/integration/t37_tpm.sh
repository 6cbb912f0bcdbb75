#!/usr/bin/env bash
# Issue 14, TPM part: the host key sealed in a TPM 2.0 — a real TPM
# simulator (swtpm, started here on 127.0.0.1 with swtpm_setup's state),
# reached through the TSS2 TCTI loader. `init --tpm` leaves no key file on
# disk; the set mounts and records; the members and config copied to another
# machine (a second swtpm with its own state) are refused with a clear
# error; a changed PCR 7 is refused naming PCR 7; the recovery passphrase
# opens the set on the second machine and `key seal --tpm` binds it there;
# `key rotate` replaces the sealed key and the old blob stops working.
. "$(dirname "$0")/lib.sh"
command -v swtpm >/dev/null && command -v swtpm_setup >/dev/null || { echo "swtpm is not installed"; exit 77; }
command -v tpm2_pcrextend >/dev/null || { echo "tpm2-tools is not installed"; exit 77; }
new_workdir
SWTPMS=()
tpm_cleanup() { for p in "${SWTPMS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; }
trap 'tpm_cleanup; cleanup' EXIT
start_tpm() {  # NAME PORT: a fresh simulated TPM (manufactured state) on 127.0.0.1:PORT
    mkdir -p "$T/$1"
    swtpm_setup --tpm2 --tpmstate "$T/$1" --overwrite > "$T/$1.setup.log" 2>&1 || { echo "swtpm_setup failed"; cat "$T/$1.setup.log"; exit 1; }
    swtpm socket --tpm2 --tpmstate dir="$T/$1" --server type=tcp,port="$2",bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=$(($2 + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear > "$T/$1.log" 2>&1 &
    SWTPMS+=($!)
    wait_for 10 env TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$2" tpm2_pcrread sha256:7 > /dev/null 2>&1
}
A=swtpm:host=127.0.0.1,port=23371 B=swtpm:host=127.0.0.1,port=23373
start_tpm tpmA 23371; start_tpm tpmB 23373
printf 'correct horse battery staple\n' > "$T/recovery.pass"
"$NVRCTL" init --member "$M1" --member "$M2" --host-key "$KEY" --config "$CONF" --tpm --tpm-tcti "$A" \
    --recovery-passphrase-file "$T/recovery.pass" > "$T/init.out" 2>&1; rc=$?
check "init --tpm exits 0 (set made, host key sealed in TPM A)" test $rc -eq 0
printf "check_interval = 1\ncontrol_socket = %s\nstate_dir = %s\n" "$T/ctl.sock" "$T/state" >> "$CONF"
check "... no plaintext host key remains; the sealed one is 0600" bash -c "[ ! -e '$KEY' ] && [ \"\$(stat -c %a '$KEY.tpm')\" = 600 ]"
check "... the configuration names it, bound to PCR 7" bash -c "grep -qx 'host_key = $KEY.tpm' '$CONF' && grep -qx 'tpm_pcrs = 7' '$CONF'"
check "... the sealed file holds no key bytes in clear" bash -c "! grep -q 'BEGIN\|\"key\"' '$KEY.tpm'"
start_daemon
mkdir "$MNT/cam1"; head -c 500000 /dev/urandom > "$MNT/cam1/seg1.mp4"; sum=$(sha256sum < "$MNT/cam1/seg1.mp4")
check "init --recovery-passphrase-file made the recovery key on both members" test -s "$M1/.nvrfs/recovery" -a -s "$M2/.nvrfs/recovery"
check "... and key operations are audited (HostKeySealed at init)" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q HostKeySealed"
stop_daemon
# Another machine: the same members and config, another TPM.
sed -i "s|^tpm_tcti = .*|tpm_tcti = $B|" "$CONF"
out=$(timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?
check "on another machine's TPM the set does not open (exit $rc), and says why" \
    bash -c "[ $rc -ne 0 ] && grep -q 'sealed by another machine' <<<\"\$1\"" _ "$out"
sed -i "s|^tpm_tcti = .*|tpm_tcti = $A|" "$CONF"
start_daemon
check "back on its own TPM it mounts and the recording is intact" bash -c "[ \"\$(sha256sum < '$MNT/cam1/seg1.mp4')\" = '$sum' ]"
stop_daemon
TPM2TOOLS_TCTI="$A" tpm2_pcrextend 7:sha256=$(printf 'a changed boot chain' | sha256sum | cut -d' ' -f1)
out=$(timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?
check "a changed PCR 7 refuses the unseal (exit $rc), naming PCR 7" bash -c "[ $rc -ne 0 ] && grep -q 'PCR 7 changed' <<<\"\$1\"" _ "$out"
# The recovery passphrase rebinds the set to the second machine.
sed -i "s|^tpm_tcti = .*|tpm_tcti = $B|" "$CONF"
cp "$KEY.tpm" "$T/a.tpm"
check "key recover --tpm on machine B binds a new host key sealed in TPM B" \
    quiet "$NVRCTL" key recover --config "$CONF" --passphrase-file "$T/recovery.pass" --tpm
check "... no key file remains; the config names the sealed key" bash -c "[ ! -e '$KEY' ] && [ -s '$KEY.tpm' ] && grep -qx 'host_key = $KEY.tpm' '$CONF' && ! cmp -s '$KEY.tpm' '$T/a.tpm'"
start_daemon
check "machine B mounts the set; the recording is intact" bash -c "[ \"\$(sha256sum < '$MNT/cam1/seg1.mp4')\" = '$sum' ]"
check "... the log verifies across the move" quiet "$NVRCTL" log verify --config "$CONF"
stop_daemon
# TPM A restarted (its PCRs back to their boot values): its key unseals
# again, but the members are wrapped under B's key now.
kill "${SWTPMS[0]}"; while kill -0 "${SWTPMS[0]}" 2>/dev/null; do sleep 0.1; done
swtpm socket --tpm2 --tpmstate dir="$T/tpmA" --server type=tcp,port=23371,bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=23372,bindaddr=127.0.0.1 --flags not-need-init,startup-clear > "$T/tpmA.log" 2>&1 &
SWTPMS+=($!)
wait_for 10 env TPM2TOOLS_TCTI="$A" tpm2_pcrread sha256:7 > /dev/null 2>&1
sed -i "s|^tpm_tcti = .*|tpm_tcti = $A|; s|^host_key = .*|host_key = $T/a.tpm|" "$CONF"
out=$(timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?
check "machine A's key unseals but no longer opens the set (exit $rc)" bash -c "[ $rc -ne 0 ] && grep -q 'different host key' <<<\"\$1\"" _ "$out"
# Rotation of a sealed key: a new key sealed in TPM B; the old blob stops working.
sed -i "s|^tpm_tcti = .*|tpm_tcti = $B|; s|^host_key = .*|host_key = $KEY.tpm|" "$CONF"
cp "$KEY.tpm" "$T/b-before.tpm"
check "key rotate with a sealed key exits 0 and leaves no key file" bash -c "'$NVRCTL' key rotate --config '$CONF' > /dev/null && [ ! -e '$KEY' ] && [ ! -e '$KEY.next.tpm' ] && ! cmp -s '$KEY.tpm' '$T/b-before.tpm'"
start_daemon
check "... the set mounts through the new seal; the recording is intact" bash -c "[ \"\$(sha256sum < '$MNT/cam1/seg1.mp4')\" = '$sum' ]"
stop_daemon
sed -i "s|^host_key = .*|host_key = $T/b-before.tpm|" "$CONF"
check_not "... the sealed key from before the rotation no longer opens it" quiet timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT"
# key seal --tpm on an existing set with a key file.
rm -rf "$T/s1" "$T/s2"; mkdir "$T/s1" "$T/s2"
quiet "$NVRCTL" init --member "$T/s1" --member "$T/s2" --host-key "$T/s.key" --config "$T/s.conf"
echo "tpm_tcti = $B" >> "$T/s.conf"
check "key seal --tpm on a set with a key file seals it (PCRs none) and removes the file" \
    bash -c "'$NVRCTL' key seal --tpm --pcrs none --config '$T/s.conf' > /dev/null && [ ! -e '$T/s.key' ] && grep -qx 'tpm_pcrs = none' '$T/s.conf' && '$NVRCTL' status --config '$T/s.conf' > /dev/null"
# Issue 12's anchor in the TPM: with a sealed host key, each mount and clean
# unmount moves the set's TPM NV counter on, and the host's record carries it.
rm -rf "$T/c1" "$T/c2" "$T/cstate" "$T/c.conf" "$T/c.key" "$T/c.key.tpm"; mkdir "$T/c1" "$T/c2"
quiet "$NVRCTL" init --member "$T/c1" --member "$T/c2" --host-key "$T/c.key" --config "$T/c.conf" --tpm --tpm-tcti "$B" --pcrs none
printf "control_socket = %s\nstate_dir = %s\n" "$T/c.sock" "$T/cstate" >> "$T/c.conf"
cmount() { "$NVRFSD" --config "$T/c.conf" "$MNT"; }
cumount() { fusermount3 -u "$MNT"; for _ in $(seq 100); do pgrep -f "nvrfsd --config $T/c.conf" > /dev/null || break; sleep 0.1; done; }
cmount && echo one > "$MNT/one" && cumount
check "the host's record carries the set's TPM counter" grep -q '"tpm_counter"' "$T"/cstate/*.anchor
cp -a "$T/cstate" "$T/cstate.old"
cmount && echo two > "$MNT/two" && cumount
rm -rf "$T/cstate"; cp -a "$T/cstate.old" "$T/cstate"   # the system disk put back from an older copy
out=$("$NVRFSD" --config "$T/c.conf" -f "$MNT" 2>&1); rc=$?
check "a host record older than the TPM's counter refuses the mount (exit $rc), saying so" \
    bash -c "[ $rc -eq 3 ] && grep -q 'TPM.s counter is at' <<<\"\$1\"" _ "$out"
quiet "$NVRCTL" set accept-rollback --config "$T/c.conf"
check "... accept-rollback lets it mount (both recordings there)" bash -c "'$NVRFSD' --config '$T/c.conf' '$MNT' && cat '$MNT/one' '$MNT/two' > /dev/null"
pkill -9 -f "nvrfsd --config $T/c.conf"; sleep 0.5; umount -l "$MNT" 2>/dev/null
check "... after kill -9 the next mount is not a false rollback" bash -c "'$NVRFSD' --config '$T/c.conf' '$MNT' && cat '$MNT/two' > /dev/null"
cumount
finish
