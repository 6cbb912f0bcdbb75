#!/usr/bin/env bash
# The nvrfs demo: create a two-disk set in a temporary folder, mount it, let
# two ffmpeg "cameras" record into it for a few seconds, and show what an
# administrator and an attacker each see. Run as root: `make demo`.
# KEEP=1 leaves the set mounted and the folder in place.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NVRCTL=$ROOT/build/nvrctl NVRFSD=$ROOT/build/nvrfsd
SECS=${SECS:-6}
D=$(mktemp -d /tmp/nvrfs-demo.XXXXXX)
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "left mounted at $D/recordings (KEEP=1)"; return; fi
  mountpoint -q "$D/recordings" && fusermount3 -u "$D/recordings"
  # nvrfsd finishes after the unmount (closing audit record, host anchor):
  # wait for it before the folder goes.
  for _ in $(seq 100); do pgrep -f "nvrfsd --config $D/nvrfs.conf" >/dev/null || break; sleep 0.1; done
  rm -rf "$D"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. create a set of two member disks and a hot spare (directories here) with a host key"
"$NVRCTL" init --member "$D/disk1" --member "$D/disk2" --spare "$D/disk3" --host-key "$D/host.key" \
  --config "$D/nvrfs.conf" --control-socket "$D/nvrfsd.sock" --min-free 5%
echo "state_dir = $D/state" >> "$D/nvrfs.conf"   # the host's record of this demo set, removed with it
mkdir -p "$D/recordings"

say "2. mount it: nvrfsd --config $D/nvrfs.conf $D/recordings"
"$NVRFSD" --config "$D/nvrfs.conf" "$D/recordings"
findmnt "$D/recordings"

say "3. two cameras record for $SECS s with ffmpeg's segment muxer (2 s files)"
for cam in 1 2; do
  mkdir -p "$D/recordings/cam$cam"
  ffmpeg -nostdin -loglevel error -re -f lavfi -i "testsrc2=size=1280x720:rate=25" -t "$SECS" \
    -c:v libx264 -preset ultrafast -g 50 -b:v 4M -pix_fmt yuv420p \
    -f segment -segment_time 2 -reset_timestamps 1 -strftime 1 "$D/recordings/cam$cam/%Y%m%d-%H%M%S.mp4" &
done
wait

say "4. what the recorder sees"
ls -lR "$D/recordings"
f=$(ls "$D"/recordings/cam1/*.mp4 | head -1)
echo "ffprobe $(basename "$f"): $(ffprobe -v error -show_entries format=duration,size -of csv=p=0 "$f")"

say "5. what someone who pulls a disk sees (names and contents encrypted)"
find "$D/disk1" -maxdepth 2 | head -8
echo "first bytes of a stored file:"; find "$D/disk1" -type f -size +100k | head -1 | xargs head -c 64 | od -An -tx1 | head -3
if diff -r --exclude=superblock "$D/disk1" "$D/disk2" >/dev/null; then echo "disk1 and disk2 hold identical stored bytes (RAID 1)"; fi

say "6. nvrctl status"
"$NVRCTL" status --config "$D/nvrfs.conf" || true

say "7. the audit log: one record per write session, with user and process"
"$NVRCTL" log show --config "$D/nvrfs.conf" | tail -8
"$NVRCTL" log verify --config "$D/nvrfs.conf"

say "8. tamper with a stored recording on disk1: nvrfs repairs it from disk2 and raises an alert"
victim=$(find "$D/disk1" -type f -size +100k | head -1)
printf 'EVIL' | dd of="$victim" bs=1 seek=70000 conv=notrunc status=none
sync; echo 3 > /proc/sys/vm/drop_caches
for f in "$D"/recordings/cam*/*.mp4; do cat "$f" > /dev/null; done
"$NVRCTL" log show --config "$D/nvrfs.conf" --event alert | tail -2
echo "all recordings still decode: $(for f in "$D"/recordings/cam*/*.mp4; do ffmpeg -nostdin -v error -i "$f" -f null - 2>&1; done | wc -l) errors"

say "9. disk2 fails: the hot spare disk3 is promoted and rebuilt, recording goes on"
"$NVRCTL" member fail --config "$D/nvrfs.conf" "$D/disk2"
until "$NVRCTL" status --config "$D/nvrfs.conf" >/dev/null 2>&1; do sleep 0.2; done
"$NVRCTL" status --config "$D/nvrfs.conf" || true
"$NVRCTL" scrub --config "$D/nvrfs.conf" || true
