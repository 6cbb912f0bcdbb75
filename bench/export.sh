#!/usr/bin/env bash
# Evidence export speed (issue 15), not part of `make test`: one 1080p25
# camera recorded as 10-second segments (EXPORT_SECONDS of video, default
# 300; 3600 for the full hour), then exported whole by `nvrctl export` with a
# mask (decode, fill, x264 ultrafast re-encode) and without one (stream
# copy), each next to plain ffmpeg doing the same job on the same files in the
# same run. Reports real-time factors and the ratio nvrfs / plain ffmpeg.
#   bash bench/export.sh
#   EXPORT_SECONDS=3600 bash bench/export.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NVRCTL=$ROOT/build/nvrctl NVRFSD=$ROOT/build/nvrfsd
SECS=${EXPORT_SECONDS:-300}
B=$(mktemp -d "${BENCH_DIR:-/var/tmp}/nvrfs-export.XXXXXX")
cleanup() {
  set +e; mountpoint -q "$B/mnt" && fusermount3 -u "$B/mnt"
  for _ in $(seq 100); do pgrep -f "nvrfsd --config $B/" >/dev/null || break; sleep 0.1; done
  rm -rf "$B"
}
trap cleanup EXIT
mkdir -p "$B/m1" "$B/m2" "$B/mnt" "$B/out"
"$NVRCTL" init --member "$B/m1" --member "$B/m2" --host-key "$B/host.key" --config "$B/conf" >/dev/null
printf "control_socket = %s\nstate_dir = %s\nmask_dir = %s\n" "$B/ctl.sock" "$B/state" "$B/masks" >> "$B/conf"
"$NVRFSD" --config "$B/conf" "$B/mnt"
mkdir "$B/mnt/cam1"
t0=$(date +%s)
echo "recording $SECS s of 1080p25 ..."
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=1920x1080:rate=25" -t "$SECS" -c:v libx264 -preset ultrafast \
  -g 50 -pix_fmt yuv420p -f segment -segment_time 10 -reset_timestamps 0 "$B/mnt/cam1/seg_%05d.mp4"
# Segment times as a recorder leaves them: each file ends 10 s after the one before.
n=0; for f in "$B"/mnt/cam1/seg_*.mp4; do touch -d @$((t0 + 10 * (n + 1))) "$f"; n=$((n + 1)); done
since=$(date -d @"$t0" +%Y-%m-%dT%H:%M:%S); until=$(date -d @$((t0 + SECS)) +%Y-%m-%dT%H:%M:%S)
"$NVRCTL" mask set cam1 --rect 0.05,0.05,0.3,0.2 --config "$B/conf" >/dev/null
# Plain ffmpeg's list: the same files with their play lengths.
{ echo "ffconcat version 1.0"; for f in "$B"/mnt/cam1/seg_*.mp4; do
    IFS=, read -r s d < <(ffprobe -v error -show_entries format=start_time,duration -of csv=p=0 "$f")
    echo "file '$f'"; echo "duration $(python3 -c "print(f'{$d - $s:.6f}')")"; done; } > "$B/list"
ffmpeg -nostdin -v error -f lavfi -i "color=c=black@1.0:s=576x216,format=rgba" -frames:v 1 "$B/mask.png"
sec() { local a b; a=$(date +%s.%N); "$@" >/dev/null 2>&1; b=$(date +%s.%N); python3 -c "print(f'{$b - $a:.2f}')"; }
plain_masked() { ffmpeg -nostdin -v error -f concat -safe 0 -i "$B/list" -loop 1 -i "$B/mask.png" -filter_complex \
  "[0:v][1:v]overlay=96:54:shortest=1,format=yuv420p[o]" -map "[o]" -c:v libx264 -preset ultrafast -crf 20 -y "$B/plain_m.mp4"; }
plain_copy() { ffmpeg -nostdin -v error -f concat -safe 0 -i "$B/list" -map 0 -c copy -y "$B/plain_c.mp4"; }
nvr_masked() { rm -rf "$B"/out/*; "$NVRCTL" export --camera cam1 --since "$since" --until "$until" --to "$B/out" --config "$B/conf"; }
nvr_copy() { rm -rf "$B"/out/*; "$NVRCTL" export --camera cam1 --since "$since" --until "$until" --to "$B/out" --no-mask \
  --reason benchmark --config "$B/conf"; }
pm=$(sec plain_masked); nm=$(sec nvr_masked); pc=$(sec plain_copy); nc=$(sec nvr_copy)
python3 - "$SECS" "$pm" "$nm" "$pc" "$nc" <<'PY'
import sys
secs, pm, nm, pc, nc = (float(x) for x in sys.argv[1:])
print(f"{secs:.0f} s of 1080p25 from nvrfs, same run ({__import__('os').cpu_count()} cores):")
print(f"  masked (x264 ultrafast): plain ffmpeg {pm:.1f} s = {secs/pm:.1f}x real time; nvrctl export {nm:.1f} s = {secs/nm:.1f}x real time; ratio {pm/nm:.2f} of plain")
print(f"  unmasked (stream copy):  plain ffmpeg {pc:.1f} s = {secs/pc:.0f}x real time; nvrctl export {nc:.1f} s = {secs/nc:.0f}x real time; ratio {pc/nc:.2f} of plain")
PY
