#!/usr/bin/env bash
# A recording lies on each member's disk in a few long extents, in order:
# nvrfs reserves member space ahead of a growing file in steps that end on a
# 4 MiB boundary of the file. Steps that did not (the build before) left ext4
# a gap after every 4-8 MiB and scattered the pieces (41 extents for 256 MiB
# on a fresh file system), which every sequential read, scrub and rebuild
# then pays for: a seek per piece on a disk, read-ahead into the gaps here.
# Members are ext4 on loop devices, each on its own file system as in a
# recorder with two disks.
. "$(dirname "$0")/lib.sh"
setup_loop 1G
start_daemon
head -c 256M /dev/urandom > "$T/rec.bin"
extents() { filefrag "$(copy_of "$1")" | awk -F': ' '{print $2 + 0}'; }
# A write-only recorder in 1 MiB writes, then one appending 32 KiB at a time
# (a camera's segment muxer), each alone on the set.
dd if="$T/rec.bin" of="$MNT/rec.mp4" bs=1M status=none
for m in "$M1" "$M2"; do
  n=$(extents "$m")
  log "256 MiB in 1 MiB writes: $n extents on $m"
  check "$m holds the 256 MiB recording in at most 12 extents" test "$n" -le 12
done
check "the recording reads back intact" cmp -s "$T/rec.bin" "$MNT/rec.mp4"
rm "$MNT/rec.mp4"
dd if="$T/rec.bin" of="$MNT/cam.mp4" bs=32k count=4096 status=none
for m in "$M1" "$M2"; do
  n=$(extents "$m")
  log "128 MiB in 32 KiB appends: $n extents on $m"
  check "$m holds the 128 MiB camera file in at most 8 extents" test "$n" -le 8
done
check "the camera file reads back intact" cmp -s <(head -c 128M "$T/rec.bin") "$MNT/cam.mp4"
finish
