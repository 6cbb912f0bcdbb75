#!/usr/bin/env bash
# Write-out while recording: a long recording written without fsync does not
# pile up as dirty pages on the members (nvrfs starts their write-out every
# 8 MiB, so the disks work while the next data is encrypted and a power cut
# takes less), and what was written reads back intact, from one member per
# file. Members are plain directories on this machine's disk: the point is
# the kernel's dirty-page accounting for them.
. "$(dirname "$0")/lib.sh"
setup
start_daemon
S=512  # MiB written through nvrfs: twice that lands on the members
# Left alone, the kernel starts writing only above its background threshold;
# if that is below what the members receive, it would flush anyway and this
# test could not tell the difference.
avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
bg_bytes=$(cat /proc/sys/vm/dirty_background_bytes)
[ "$bg_bytes" -gt 0 ] && bg_kib=$((bg_bytes / 1024)) || bg_kib=$((avail_kib * $(cat /proc/sys/vm/dirty_background_ratio) / 100))
[ $((2 * S * 1024)) -lt $((bg_kib * 9 / 10)) ] || { echo "background write-out threshold ${bg_kib} KiB is below $((2 * S)) MiB: cannot test"; exit 77; }

head -c $((S << 20)) /dev/urandom > "$T/rec.bin"
sync
dirty_before=$(awk '/^Dirty:/ {print $2}' /proc/meminfo)
dd if="$T/rec.bin" of="$MNT/rec.mp4" bs=1M status=none     # no fsync, as a recorder writes
dirty_after=$(awk '/^Dirty:/ {print $2}' /proc/meminfo)
grown=$(( (dirty_after - dirty_before) / 1024 ))
log "dirty pages grew by $grown MiB while $((2 * S)) MiB went to the members"
check "the members' write-out kept dirty pages under $((S / 4)) MiB" test "$grown" -lt $((S / 4))
drop_caches
check "the recording reads back intact" cmp -s "$T/rec.bin" "$MNT/rec.mp4"
finish
