#!/usr/bin/env bash
# A real recorder load: 8 ffmpeg cameras (synthetic H.264, segment muxer,
# 2-second files) record into nvrfs for 30 s at once. Every segment must play,
# and each member on its own (the other one absent) must decrypt to the same
# recordings: the mirror is complete on both disks.
# test-slow: 70
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; exit 77; }
SECS=${NVRFS_CAM_SECONDS:-30}
setup
start_daemon
pids=()
for c in $(seq 8); do
  mkdir -p "$MNT/cam$c"
  ffmpeg -nostdin -loglevel error -re -f lavfi -i "testsrc=size=320x240:rate=15" -t "$SECS" \
    -c:v libx264 -preset ultrafast -tune zerolatency -g 30 -pix_fmt yuv420p \
    -f segment -segment_time 2 -reset_timestamps 1 "$MNT/cam$c/seg_%04d.mp4" &
  pids+=($!)
done
fails=0; for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
check "8 cameras recorded $SECS s without an error ($fails failed)" test $fails -eq 0
n=$(find "$MNT" -name '*.mp4' | wc -l)
check "about $((8 * SECS / 2)) segments were written ($n)" test "$n" -ge $((8 * SECS / 2 - 8))
drop_caches
# One ffmpeg per camera opens all its segments and reads every packet (a
# process per segment cost more than the reading); a camera that fails is
# gone through with ffprobe to name the segments.
bad=0
for d in "$MNT"/cam*; do
  ins=() maps=() i=0
  for f in "$d"/*.mp4; do ins+=(-i "$f"); maps+=(-map "$i"); i=$((i + 1)); done
  ffmpeg -nostdin -v error "${ins[@]}" "${maps[@]}" -c copy -f null - > "$T/play.err" 2>&1 && continue
  bad=$((bad + 1)); sed 's/^/    /' "$T/play.err" | head -5
  for f in "$d"/*.mp4; do
    ffprobe -v error -show_entries format=duration -of csv=p=0 "$f" >/dev/null 2>&1 || echo "    unplayable: $f"
  done
done
check "every segment is playable (ffmpeg reads every packet; $bad cameras failed)" test $bad -eq 0
sums() { (cd "$MNT" && find . -name '*.mp4' -print0 | sort -z | xargs -0 md5sum); }
all=$(sums)
stop_daemon
for only in "$M1" "$M2"; do
  # Each member is read as if pulled and mounted alone on another host (its
  # own state dir): on this host, the second one is older than the first one
  # left the set, which the host anchor refuses (t28).
  "$NVRFSD" --member "$only" --host-key "$KEY" --degraded --control-socket "$T/ctl1.sock" \
    --state-dir "$T/state-$(basename "$only")" -f "$MNT" > "$T/one.log" 2>&1 &
  DAEMON_PID=$!
  wait_for 10 mountpoint -q "$MNT" || { echo "single-member mount failed"; cat "$T/one.log"; exit 1; }
  check "$(basename "$only") alone decrypts to the same $n recordings" test "$(sums)" = "$all"
  stop_daemon
done
finish
