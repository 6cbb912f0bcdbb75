#!/usr/bin/env bash
# Tampering with stored recordings while mounted: flipped bytes, swapped
# chunks, a truncated copy, a file spliced from another file. On one member:
# the read returns the true bytes, the bad copy is repaired, an alert is raised.
# On both members: the read fails with EIO (never forged bytes) and is alerted.
. "$(dirname "$0")/lib.sh"
setup
start_daemon
CH=65564; HDR=32   # stored chunk and header size (docs/format.md)
head -c 1000000 /dev/urandom > "$T/a.bin"
head -c 1000000 /dev/urandom > "$T/b.bin"
cp "$T/a.bin" "$MNT/a.mp4"
A1=$(stored_files "$M1" | head -1); A2=$M2/${A1#"$M1"/}      # a.mp4 is the only file yet
cp "$T/b.bin" "$MNT/b.mp4"
B1=$(stored_files "$M1" | grep -vx "$A1" | head -1)
check "a.mp4 is stored under the same encrypted name on both members" test -f "$A2"
reads_ok() { drop_caches; cmp -s "$MNT/a.mp4" "$T/a.bin" && cmp -s "$MNT/b.mp4" "$T/b.bin"; }

n0=$(alerts_of TamperDetected)
flipbyte "$A1" $((HDR + 3 * CH + 500))
check "flipped byte on one member: reads return the true bytes" reads_ok
check "the damaged copy was repaired" cmp -s "$A1" "$A2"
check "a TamperDetected alert was raised" test "$(alerts_of TamperDetected)" -gt "$n0"

python3 - "$A1" $HDR $CH <<'PY'
import sys
p, hdr, ch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = bytearray(open(p, 'rb').read())
c1, c2 = d[hdr + ch: hdr + 2 * ch], d[hdr + 2 * ch: hdr + 3 * ch]
d[hdr + ch: hdr + 2 * ch], d[hdr + 2 * ch: hdr + 3 * ch] = c2, c1
open(p, 'wb').write(d)
PY
check "swapped chunks on one member: reads return the true bytes" reads_ok
check "the swapped copy was repaired" cmp -s "$A1" "$A2"

truncate -s $((HDR + 5 * CH)) "$A2"
check "truncated copy on one member: reads return the true bytes" reads_ok
check "the truncated copy was restored" cmp -s "$A1" "$A2"

# Splice: chunk 2 of the other file put into this one (same index, other file id).
dd if="$B1" of="$A1" bs=1 skip=$((HDR + 2 * CH)) seek=$((HDR + 2 * CH)) count=$CH conv=notrunc status=none
check "a chunk spliced in from another file is rejected and repaired" reads_ok
check "the spliced copy was repaired" cmp -s "$A1" "$A2"

n1=$(alerts_of TamperDetected)
flipbyte "$A1" $((HDR + 7 * CH + 9)); flipbyte "$A2" $((HDR + 7 * CH + 9))
drop_caches
out=$(cat "$MNT/a.mp4" 2>&1 >/dev/null); rc=$?
check "damage on both members: the read fails (exit $rc)" test $rc -ne 0
check "  ... with EIO ($out)" grep -q "Input/output error" <<<"$out"
check "  ... and bytes before the bad chunk still read" cmp -s <(head -c $((7 * 65536)) "$MNT/a.mp4") <(head -c $((7 * 65536)) "$T/a.bin")
check "  ... and an alert says no good copy exists" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q 'not authentic on any member'"
check "the other recording is untouched" cmp -s "$MNT/b.mp4" "$T/b.bin"

# Format version 2: a recording that ends on a chunk boundary (a 2 MiB camera
# segment) ends in an empty chunk, and that chunk is what tells the end from
# a cut there: cut off on both members, the file fails (at open, where the
# audit log's record of its end no longer matches; a file without one fails
# at the read that reaches its end, tests/unit/test_volume.cpp).
head -c 2097152 /dev/urandom > "$T/c.bin"; cp "$T/c.bin" "$MNT/c.mp4"
C1=$(stored_files "$M1" | grep -vx -e "$A1" -e "$B1" | head -1); C2=$M2/${C1#"$M1"/}
check "a 2 MiB recording is stored with an empty last chunk" test "$(stat -c %s "$C1")" = $((HDR + 32 * CH + 28))
truncate -s $((HDR + 32 * CH)) "$C1" "$C2"
drop_caches
out=$(cat "$MNT/c.mp4" 2>&1 >/dev/null); rc=$?
check "its empty last chunk cut off on both members: the read fails (exit $rc: $out)" test $rc -ne 0
check "  ... and is alerted as tampering" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep TamperDetected | grep -q c.mp4"
finish
