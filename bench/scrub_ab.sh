#!/usr/bin/env bash
# Scrub of the same set by two builds, rounds interleaved (A B A B ...): the
# set's two members on ext4 file systems of their own, each on a loop file
# (as bench/compare.py --peers places them), holding SCRUB_MIB of recordings.
# Per round: remount with that build's nvrfsd, drop caches, time
# `nvrctl scrub` (always the NEW build's nvrctl, so only the daemons differ),
# nvrfsd's CPU seconds (utime+stime) and what the page cache holds after.
# Not part of `make test`.
#   bash bench/scrub_ab.sh OLD_BUILD_DIR [NEW_BUILD_DIR]   (default new: build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=${1:?old build dir}; B=${2:-$ROOT/build}
ROUNDS=${ROUNDS:-4} MIB=${SCRUB_MIB:-1024}
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/nvrfs-scrub.XXXXXX")
LOOPS=()
cleanup() {
  mountpoint -q "$W/mnt" && fusermount3 -u "$W/mnt"; sleep 0.3
  for d in e1 e2; do mountpoint -q "$W/$d" && umount "$W/$d"; done
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
  rm -rf "$W"
}
trap cleanup EXIT
for d in e1 e2; do
  truncate -s $((MIB * 3 / 1024 + 2))G "$W/$d.img"
  l=$(losetup -f --show "$W/$d.img"); LOOPS+=("$l")
  mkfs.ext4 -q -F "$l"; mkdir "$W/$d"; mount "$l" "$W/$d"
done
mkdir "$W/mnt"
"$B/nvrctl" init --member "$W/e1/m" --member "$W/e2/m" --host-key "$W/key" --config "$W/conf" >/dev/null
printf "control_socket = %s\nstate_dir = %s\n" "$W/ctl.sock" "$W/state" >> "$W/conf"
mount_with() {
  mountpoint -q "$W/mnt" && fusermount3 -u "$W/mnt" && sleep 0.5
  "$1/nvrfsd" --config "$W/conf" "$W/mnt"
}
mount_with "$B"
mkdir "$W/mnt/rec"
for i in $(seq 0 $((MIB / 256 - 1))); do head -c $((256 << 20)) /dev/urandom > "$W/mnt/rec/seg$i.mp4"; done
declare -A secs cpu
for r in $(seq "$ROUNDS"); do
  for bd in "$A" "$B"; do
    mount_with "$bd"
    pid=$(pgrep -n -f "nvrfsd --config $W/conf")
    sync; echo 3 > /proc/sys/vm/drop_caches
    c0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); t0=$(date +%s.%N)
    "$B/nvrctl" scrub --config "$W/conf" > /dev/null
    t1=$(date +%s.%N); c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    s=$(echo "$t1 - $t0" | bc); c=$(echo "($c1 - $c0) / $(getconf CLK_TCK)" | bc -l)
    secs[$bd]+="$s "; cpu[$bd]+="$c "
    printf '%-40s round %d: scrub %.2f s, nvrfsd CPU %.2f s, cached afterwards %d MiB\n' "$bd" "$r" "$s" "$c" \
      $(( $(awk '/^Cached:/ {print $2}' /proc/meminfo) / 1024 ))
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ma=$(median <<<"${secs[$A]}"); mb=$(median <<<"${secs[$B]}")
ca=$(median <<<"${cpu[$A]}"); cb=$(median <<<"${cpu[$B]}")
printf 'median scrub: old %.2f s, new %.2f s (new is %.2fx as fast); nvrfsd CPU: old %.2f s, new %.2f s\n' \
  "$ma" "$mb" "$(echo "$ma / $mb" | bc -l)" "$ca" "$cb"
