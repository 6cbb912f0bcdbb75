#!/usr/bin/env bash
# Scrub: every chunk on every member is verified, while recording goes on.
# Without --repair it reports; with --repair it rewrites bad copies from good
# ones; a chunk bad on every member is counted as having no good copy.
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; exit 77; }
setup
start_daemon
mkdir -p "$MNT/archive"
for i in 1 2 3 4; do   # S1..S4: the stored file of archive/a1..a4.mp4 on member 1
  head -c 1500000 /dev/urandom > "$T/a$i"
  before_files; cp "$T/a$i" "$MNT/archive/a$i.mp4"; declare "S$i=$(new_stored)"
done
check "each recording's stored file is found, a different one each" \
  test "$(printf '%s\n' "$S1" "$S2" "$S3" "$S4" | grep . | sort -u | wc -l)" -eq 4
flipbyte "$S1" 70000
flipbyte "$S2" 200000
flipbyte "${S3/$M1/$M2}" 400000            # on the other member
flipbyte "$S4" 140000; flipbyte "${S4/$M1/$M2}" 140000   # same chunk on both: no good copy
scrub_json() { "$NVRCTL" scrub --config "$CONF" --json "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

out=$(scrub_json); rc=$?
check "scrub without --repair reports problems (exit $rc)" test $rc -eq 1
check "  ... 5 bad chunk copies found, 2 of them the same chunk ($(field bad <<<"$out"))" test "$(field bad <<<"$out")" -eq 5
check "  ... none repaired" test "$(field repaired <<<"$out")" -eq 0
check "  ... and the copies still differ" bash -c "! cmp -s '$S1' '${S1/$M1/$M2}'"
out=$(scrub_json --repair); rc=$?
check "scrub --repair (exit $rc) repairs the 3 that have a good copy ($(field repaired <<<"$out"))" test "$(field repaired <<<"$out")" -eq 3
check "  ... and counts the one without ($(field unrepairable <<<"$out"))" test "$(field unrepairable <<<"$out")" -eq 2
check "the repaired copies match" bash -c "cmp -s '$S1' '${S1/$M1/$M2}' && cmp -s '$S2' '${S2/$M1/$M2}' && cmp -s '$S3' '${S3/$M1/$M2}'"
drop_caches
check "repaired recordings read back intact" bash -c "cmp -s '$T/a1' '$MNT/archive/a1.mp4' && cmp -s '$T/a3' '$MNT/archive/a3.mp4'"
check "the one with no good copy is refused, not forged" bash -c "! cat '$MNT/archive/a4.mp4' > /dev/null 2>&1"
rm "$MNT/archive/a4.mp4"
check "a clean set scrubs clean (exit 0)" quiet "$NVRCTL" scrub --config "$CONF"

# Both copies authentic but not the same bytes (a crash between resealing a
# chunk on one member and the other): member 2 gets back its copy of chunk 1
# from before the same bytes were written there again (a fresh nonce).
C2=${S2/$M1/$M2}
dd if="$C2" of="$T/old-chunk" bs=65564 count=1 skip=65596 iflag=skip_bytes status=none  # 32-byte header, chunk 0
dd if="$T/a2" of="$MNT/archive/a2.mp4" bs=65536 skip=1 seek=1 count=1 conv=notrunc status=none
dd if="$T/old-chunk" of="$C2" bs=65564 seek=65596 oflag=seek_bytes conv=notrunc status=none
check "  an old but authentic copy: the copies differ" bash -c "! cmp -s '$S2' '$C2'"
out=$(scrub_json); rc=$?
check "  ... scrub finds nothing bad (exit $rc, $(field bad <<<"$out") bad)" test $rc -eq 0 -a "$(field bad <<<"$out")" -eq 0
out=$(scrub_json --repair)
check "  ... --repair resyncs that one chunk ($(field resynced <<<"$out"))" test "$(field resynced <<<"$out")" -eq 1
check "  ... and the copies are the same bytes again" cmp -s "$S2" "$C2"
check "  ... holding the recording" cmp -s "$T/a2" "$MNT/archive/a2.mp4"

mkdir -p "$MNT/cam1"
ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=25 -t 5 -c:v libx264 -preset ultrafast -g 25 \
  -pix_fmt yuv420p -f segment -segment_time 1 "$MNT/cam1/seg_%03d.mp4" &
FF=$!
sleep 1.5
out=$("$NVRCTL" scrub --config "$CONF" 2>&1); rc=$?
echo "    $out" | tail -1
check "a scrub during recording runs and finds nothing (exit $rc)" test $rc -eq 0
wait $FF; rc=$?
check "the recording was not disturbed (exit $rc)" test $rc -eq 0
check "ScrubFinished alerts are logged" has_alert ScrubFinished
finish
