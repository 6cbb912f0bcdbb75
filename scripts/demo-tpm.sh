#!/usr/bin/env bash
# The nvrfs TPM demo (under a minute): a simulated TPM 2.0 (swtpm on
# 127.0.0.1), a set whose host key is sealed in it — no key file on disk —
# a camera recording into it, the sealed key refusing to open once PCR 7
# changes, and the recovery passphrase opening it anyway. Run as root:
# `make demo-tpm`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NVRCTL=$ROOT/build/nvrctl NVRFSD=$ROOT/build/nvrfsd
D=$(mktemp -d /tmp/nvrfs-demo-tpm.XXXXXX)
PORT=23391 TCTI=swtpm:host=127.0.0.1,port=23391
SWTPM=
cleanup() {
  mountpoint -q "$D/recordings" && fusermount3 -u "$D/recordings"
  for _ in $(seq 100); do pgrep -f "nvrfsd --config $D/nvrfs.conf" >/dev/null || break; sleep 0.1; done
  [ -n "$SWTPM" ] && kill "$SWTPM" 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. a TPM 2.0 simulator (swtpm) stands in for the recorder's TPM"
mkdir "$D/tpm"; swtpm_setup --tpm2 --tpmstate "$D/tpm" --overwrite > /dev/null
swtpm socket --tpm2 --tpmstate dir="$D/tpm" --server type=tcp,port=$PORT,bindaddr=127.0.0.1 \
  --ctrl type=tcp,port=$((PORT + 1)),bindaddr=127.0.0.1 --flags not-need-init,startup-clear &
SWTPM=$!
for _ in $(seq 50); do TPM2TOOLS_TCTI=$TCTI tpm2_pcrread sha256:7 >/dev/null 2>&1 && break; sleep 0.1; done

say "2. nvrctl init --tpm: the host key is sealed in the TPM, bound to PCR 7"
"$NVRCTL" init --member "$D/disk1" --member "$D/disk2" --host-key "$D/host.key" --config "$D/nvrfs.conf" \
  --control-socket "$D/nvrfsd.sock" --tpm --tpm-tcti "$TCTI"
echo "state_dir = $D/state" >> "$D/nvrfs.conf"
ls -l "$D" | grep host.key
printf 'correct horse battery staple\n' > "$D/recovery.pass"
"$NVRCTL" key recovery create --config "$D/nvrfs.conf" --passphrase-file "$D/recovery.pass"

say "3. mount (the key is unsealed in memory) and record 4 s"
mkdir "$D/recordings"; "$NVRFSD" --config "$D/nvrfs.conf" "$D/recordings"
mkdir "$D/recordings/cam1"
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=640x360:rate=25" -t 4 -c:v libx264 -preset ultrafast \
  -pix_fmt yuv420p "$D/recordings/cam1/clip.mp4"
ls -l "$D/recordings/cam1"
"$NVRCTL" status --config "$D/nvrfs.conf" | head -4
fusermount3 -u "$D/recordings"
for _ in $(seq 100); do pgrep -f "nvrfsd --config $D/nvrfs.conf" >/dev/null || break; sleep 0.1; done

say "4. the boot chain changes (PCR 7 extended): the TPM refuses to unseal"
TPM2TOOLS_TCTI=$TCTI tpm2_pcrextend 7:sha256=$(printf 'another bootloader' | sha256sum | cut -d' ' -f1)
"$NVRFSD" --config "$D/nvrfs.conf" "$D/recordings" 2>&1 | sed 's/^/    /' || true

say "5. the recovery passphrase, kept off the recorder, still opens the set"
"$NVRFSD" --config "$D/nvrfs.conf" --recovery-passphrase-file "$D/recovery.pass" "$D/recordings"
ffprobe -v error -show_entries format=duration -of csv=p=0 "$D/recordings/cam1/clip.mp4" | sed 's/^/    clip.mp4 duration: /'
"$NVRCTL" alerts --config "$D/nvrfs.conf" | grep -oE "MountedWithRecoveryKey .{0,70}" | sed "s/^/    alert: /" || true
say "done"
