#!/usr/bin/env bash
# Host binding (5.1.1.2) and bad input: members moved to a machine with another
# host key reveal no name and no byte of video and refuse to mount; every kind
# of bad input gets a one-line error, a non-zero exit and leaves members untouched.
. "$(dirname "$0")/lib.sh"
setup
start_daemon
MARK=NVRFS-PLAINTEXT-MARKER-7f3a9c
mkdir "$MNT/front-door-camera"
for i in 1 2 3; do printf '%s\n' "$MARK"; head -c 70000 /dev/zero; done > "$MNT/front-door-camera/secret-recording.mp4"
cp "$MNT/front-door-camera/secret-recording.mp4" "$T/plain.copy"
stop_daemon

check "raw members contain no plaintext marker" bash -c "! grep -r -a -q '$MARK' '$M1' '$M2'"
check "raw members contain no file or directory name" bash -c "! (find '$M1' '$M2'; grep -r -a -l -e secret-recording -e front-door '$M1' '$M2') | grep -q -e secret -e front-door"
check "the zero-filled plaintext is not visible either" bash -c "! grep -r -a -q -P '\\x00{64}' \$(find '$M1' -type f ! -path '*/.nvrfs/*')"
snapshot() { find "$M1" "$M2" -type f -exec md5sum {} + | sort; }
before=$(snapshot)

# expect_refusal "what" EXIT-CODE PATTERN command...
expect_refusal() {
  local what=$1 want=$2 pat=$3; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -eq "$want" ] && grep -q -- "$pat" <<<"$out" && [ "$(wc -l <<<"$out")" -le 2 ] && ! mountpoint -q "$MNT"; then
    pass "$what -> exit $rc: $out"
  else
    fail "$what -> exit $rc (wanted $want and /$pat/): $out"
    mountpoint -q "$MNT" && fusermount3 -u "$MNT"
  fi
}
head -c 32 /dev/urandom > "$T/other.key"; chmod 600 "$T/other.key"
expect_refusal "another host key" 1 "different host key" "$NVRFSD" --member "$M1" --member "$M2" --host-key "$T/other.key" -f "$MNT"
expect_refusal "missing host key" 1 "nvrctl init" "$NVRFSD" --member "$M1" --member "$M2" --host-key "$T/none.key" -f "$MNT"
cp "$KEY" "$T/loose.key"; chmod 644 "$T/loose.key"
expect_refusal "host key readable by others" 1 "chmod 600" "$NVRFSD" --member "$M1" --member "$M2" --host-key "$T/loose.key" -f "$MNT"
"$NVRCTL" init --member "$T/o1" --member "$T/o2" --host-key "$KEY" --no-config >/dev/null
expect_refusal "a member of another set" 1 "refusing to mix sets" "$NVRFSD" --member "$M1" --member "$T/o1" --host-key "$KEY" -f "$MNT"
mkdir "$T/blank"
expect_refusal "a directory that is no member" 1 "not an nvrfs member" "$NVRFSD" --member "$M1" --member "$T/blank" --host-key "$KEY" -f "$MNT"
expect_refusal "the same member twice" 1 "listed twice" "$NVRFSD" --member "$M1" --member "$M1/" --host-key "$KEY" -f "$MNT"
cp -a "$M2" "$T/m2.copy"
flipbyte "$T/m2.copy/.nvrfs/superblock" 50
expect_refusal "a corrupt superblock" 1 "checksum mismatch" "$NVRFSD" --member "$M1" --member "$T/m2.copy" --host-key "$KEY" -f "$MNT"
expect_refusal "an unknown option" 2 "unknown option" "$NVRFSD" --config "$CONF" --frobnicate "$MNT"
expect_refusal "no mountpoint" 2 "no mountpoint" "$NVRFSD" --config "$CONF"
printf 'member = %s\nmin_free = plenty\n' "$M1" > "$T/bad.conf"
expect_refusal "a bad config value" 2 "bad.conf:2" "$NVRFSD" --config "$T/bad.conf" "$MNT"
expect_refusal "a missing config" 2 "cannot read config" "$NVRFSD" --config "$T/none.conf" "$MNT"
expect_refusal "a mountpoint that does not exist" 1 "No such file" "$NVRFSD" --config "$CONF" -f "$T/nowhere"
check "members are untouched by every refused start" test "$before" = "$(snapshot)"

start_daemon
out=$("$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?
check "a mountpoint in use is refused (exit $rc: $out)" bash -c "[ $rc -eq 1 ] && grep -q 'already in use' <<<'$out'"
check "the first mount still serves the recording" cmp "$MNT/front-door-camera/secret-recording.mp4" "$T/plain.copy"
out=$("$NVRCTL" init --member "$T/blank2" --member "$M1" --host-key "$KEY" --no-config 2>&1); rc=$?
check "nvrctl init refuses a non-empty member (exit $rc: $out)" bash -c "[ $rc -eq 1 ] && grep -q 'not empty' <<<'$out'"
out=$("$NVRCTL" frob 2>&1); rc=$?
check "nvrctl: unknown verb is a usage error (exit $rc)" test $rc -eq 2
finish
