#!/usr/bin/env bash
# Real recorders, unmodified: ffmpeg's segment muxer, its HLS muxer (writes
# temp playlists and renames them) and an mp4 with faststart (seeks back and
# rewrites). Every result must decode cleanly and be mirrored byte for byte.
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; exit 77; }
setup
start_daemon
mkdir -p "$MNT/cam1" "$MNT/hls" "$MNT/clips"
SRC="-f lavfi -i testsrc=size=640x360:rate=25"
ENC="-c:v libx264 -preset ultrafast -g 25 -pix_fmt yuv420p"

check "segment muxer records" ffmpeg -nostdin -loglevel error $SRC -t 6 $ENC \
      -f segment -segment_time 1 -reset_timestamps 1 "$MNT/cam1/seg_%03d.mp4"
check "HLS muxer records" ffmpeg -nostdin -loglevel error $SRC -t 4 $ENC \
      -f hls -hls_time 1 -hls_list_size 0 -hls_flags temp_file "$MNT/hls/index.m3u8"
check "mp4 with faststart records" ffmpeg -nostdin -loglevel error $SRC -t 3 $ENC -movflags +faststart "$MNT/clips/fast.mp4"

n=$(ls "$MNT/cam1" | wc -l)
check "at least 5 segments were written (got $n)" test "$n" -ge 5
drop_caches
bad=0
for f in "$MNT"/cam1/*.mp4 "$MNT"/hls/*.ts "$MNT/clips/fast.mp4"; do
  out=$(ffmpeg -nostdin -v error -i "$f" -f null - 2>&1)
  if [ -n "$out" ]; then echo "    decode error in $f: $out"; bad=$((bad + 1)); fi
done
check "every recording decodes without error" test "$bad" -eq 0
check "HLS playlist lists its segments" grep -q 'index0.ts' "$MNT/hls/index.m3u8"
check_not "no temporary playlist left behind" ls "$MNT/hls/index.m3u8.tmp" 2>/dev/null
dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$MNT/clips/fast.mp4")
check "faststart clip is 3 s long (got $dur)" awk -v d="$dur" 'BEGIN { exit !(d > 2.9 && d < 3.1) }'
check "members hold identical stored bytes" members_identical
sessions=$(audit_json | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["event"]=="write" and r["comm"].startswith("ffmpeg")))')
check "the audit log has a write session per recording file ($sessions)" test "$sessions" -ge "$((n + 3))"
finish
