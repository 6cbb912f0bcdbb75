#!/usr/bin/env bash
# Rebuild and scrub speed against a raw copy, side by side in one run on the
# same disk: the time nvrfs takes to rebuild a hot spare (member failed ->
# set clean again) and to scrub every member, vs. `cp -a` of the same stored
# tree. Usage: bench/rebuild.sh [MiB]   (default 1024)
. "$(dirname "$0")/lib.sh"
MIB=${1:-1024}
mkdir -p "$B/spare"
mount_set
fill_recordings "$MIB"
"$NVRCTL" spare add --config "$B/nvrfs.conf" "$B/spare" >/dev/null
sync; echo 3 > /proc/sys/vm/drop_caches

t0=$(now); cp -a "$B/m1" "$B/rawcopy"; sync; t1=$(now)
raw=$(echo "$t1 - $t0" | bc)
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now)
"$NVRCTL" member fail --config "$B/nvrfs.conf" "$B/m2" >/dev/null
until "$NVRCTL" status --config "$B/nvrfs.conf" >/dev/null 2>&1; do sleep 0.05; done
sync; t1=$(now)
reb=$(echo "$t1 - $t0" | bc)
diff -r --exclude=superblock -q "$B/m1" "$B/spare" >/dev/null || { echo "MISMATCH after rebuild"; exit 1; }
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now); "$NVRCTL" scrub --config "$B/nvrfs.conf" >/dev/null; t1=$(now)
scr=$(echo "$t1 - $t0" | bc)
# A raw read of the same stored bytes on both complete members, for the scrub.
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now); cat "$B"/m1/*/* "$B"/spare/*/* > /dev/null 2>&1 || true; t1=$(now)
rawread=$(echo "$t1 - $t0" | bc)
printf '%-44s %10s %10s %8s\n' "workload ($MIB MiB of recordings)" "raw s" "nvrfs s" "ratio"
printf '%-44s %10.2f %10.2f %8.2f\n' "rebuild a spare vs cp -a of a member" "$raw" "$reb" "$(echo "$raw / $reb" | bc -l)"
printf '%-44s %10.2f %10.2f %8.2f\n' "scrub both members vs cat of both" "$rawread" "$scr" "$(echo "$rawread / $scr" | bc -l)"
