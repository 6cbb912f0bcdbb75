#!/usr/bin/env bash
# Write-out while recording: a long recording written without fsync does not
# pile up as dirty pages on the members (nvrfs starts their write-out every
# 8 MiB, so the disks work while the next data is encrypted and a power cut
# takes less), and what was written reads back intact, from one member per
# file. Members are plain directories on this machine's disk: the point is
# the kernel's dirty-page accounting for them.
# Nor does it stay in memory twice: once written out (or read through nvrfs
# in order), the members' encrypted pages are let go. The plaintext is in
# the FUSE page cache only when read: a write-only open (how recorders write)
# bypasses it on kernels that keep other readers coherent (Linux 6.6 and
# later). Reading about at random keeps the members' pages.
# test-alone
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
cached_before=$(awk '/^Cached:/ {print $2}' /proc/meminfo)
dirty_before=$(awk '/^Dirty:/ {print $2}' /proc/meminfo)
dd if="$T/rec.bin" of="$MNT/rec.mp4" bs=1M status=none     # no fsync, as a recorder writes
dirty_after=$(awk '/^Dirty:/ {print $2}' /proc/meminfo)
grown=$(( (dirty_after - dirty_before) / 1024 ))
log "dirty pages grew by $grown MiB while $((2 * S)) MiB went to the members"
check "the members' write-out kept dirty pages under $((S / 4)) MiB" test "$grown" -lt $((S / 4))
# What of the recording's copy on a member is in memory (MiB).
resident() { echo $(( $(fincore --bytes --noheadings --output RES "$(copy_of "$1")") >> 20 )); }
sync; sleep 1
cached=$(( ($(awk '/^Cached:/ {print $2}' /proc/meminfo) - cached_before) / 1024 ))
w1=$(resident "$M1"); w2=$(resident "$M2")
log "page cache grew by $cached MiB for the $S MiB recording (its copies on the members: $w1 and $w2 MiB)"
IFS=. read -r kmaj kmin _ < /proc/sys/kernel/osrelease
if [ "$kmaj" -gt 6 ] || { [ "$kmaj" -eq 6 ] && [ "${kmin%%[!0-9]*}" -ge 6 ]; }; then
  check "a write-only recorder left no plaintext copy in the page cache" test $((cached - w1 - w2)) -lt $((S / 8))
else
  log "kernel $kmaj.$kmin: write-only opens keep the page cache (before 6.6 it would not stay coherent)"
fi
log "after writing $S MiB: $w1 and $w2 MiB of the members' copies in memory"
check "written-out pages were let go on both members" test $((w1 + w2)) -lt $((S / 2))
drop_caches
check "the recording reads back intact" cmp -s "$T/rec.bin" "$MNT/rec.mp4"
r=$(( $(resident "$M1") + $(resident "$M2") ))
log "after reading it in order: $r MiB of the members' copies in memory"
check "a read in order let the members' pages go behind it" test "$r" -lt $((S / 8))
drop_caches
python3 - "$MNT/rec.mp4" "$S" <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for off in random.Random(7).sample(range(0, int(sys.argv[2]) << 20, 1 << 20), int(sys.argv[2]) // 2):
    os.pread(fd, 1 << 20, off)
PY
r=$(( $(resident "$M1") + $(resident "$M2") ))
log "after reading half of it at random: $r MiB of the members' copies in memory"
check "reads at random kept the members' pages (3/4 of the $((S / 2)) MiB read at least)" test "$r" -ge $((S * 3 / 8))

# A rebuild writes the spare's copy the same way.
SP=$T/spare; mkdir "$SP"
quiet "$NVRCTL" spare add --config "$CONF" "$SP"
drop_caches
quiet "$NVRCTL" member fail --config "$CONF" "$M2"
check "the spare was rebuilt" wait_for 120 is_clean
sync; sleep 1
r=$(resident "$SP")
log "after rebuilding it onto the spare: $r MiB of the spare's copy in memory"
check "the rebuild let the spare's written-out pages go" test "$r" -lt $((S / 4))
check "the spare's copy is the survivor's" cmp -s "$(copy_of "$M1")" "$(copy_of "$SP")"

# With the disk busy (another writer, past the page cache), a write-out is
# still under way when the writer lets its pages go, and the kernel keeps
# those: the close lets them go once that write-out is done (the build
# before left 71-150 MiB of each copy of a 512 MiB recording so).
rm "$MNT/rec.mp4"
dd if=/dev/zero of="$T/noise" bs=4M count=1000 oflag=direct status=none &
noise=$!
dd if="$T/rec.bin" of="$MNT/rec2.mp4" bs=1M status=none
sleep 0.5; sync; sleep 1
kill "$noise" 2>/dev/null; wait "$noise" 2>/dev/null; rm -f "$T/noise"
w1=$(resident "$M1"); w2=$(resident "$SP")
log "after writing $S MiB with the disk busy: $w1 and $w2 MiB of the members' copies in memory"
check "a closed recording's written-out pages were let go with the disk busy" test $((w1 + w2)) -le $((S / 8))
finish
