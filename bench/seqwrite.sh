#!/usr/bin/env bash
# First throughput figure: one sequential writer, side by side in one run on the
# same disk. Reports ratios, not absolute times:
#   raw    : the same bytes written to both member directories (dd twice, what
#            a mirror must do at least), fsync'd
#   nvrfs  : written once through the nvrfs mount (encrypted, mirrored), fsync'd
# Reads: the file read back through nvrfs vs. read from one raw member, caches dropped.
# Usage: bench/seqwrite.sh [MiB] [rounds]   (defaults 1024 MiB, 3 rounds; best round counts)
. "$(dirname "$0")/lib.sh"
MIB=${1:-1024}; ROUNDS=${2:-3}
mkdir -p "$B/raw1" "$B/raw2"
mount_set
head -c $((MIB << 20)) /dev/urandom > "$B/src"   # incompressible, like video

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
best_raw_w=999999 best_nv_w=999999 best_raw_r=999999 best_nv_r=999999
for r in $(seq "$ROUNDS"); do
  rm -f "$B/raw1/f" "$B/raw2/f" "$B/mnt/f"; dropc
  cat "$B/src" > /dev/null   # source in page cache for both
  t=$(secs bash -c "dd if='$B/src' of='$B/raw1/f' bs=1M conv=fsync && dd if='$B/src' of='$B/raw2/f' bs=1M conv=fsync")
  best_raw_w=$(echo "if ($t < $best_raw_w) $t else $best_raw_w" | bc)
  t=$(secs dd if="$B/src" of="$B/mnt/f" bs=1M conv=fsync)
  best_nv_w=$(echo "if ($t < $best_nv_w) $t else $best_nv_w" | bc)
  dropc; t=$(secs dd if="$B/raw1/f" of=/dev/null bs=1M)
  best_raw_r=$(echo "if ($t < $best_raw_r) $t else $best_raw_r" | bc)
  dropc; t=$(secs dd if="$B/mnt/f" of=/dev/null bs=1M)
  best_nv_r=$(echo "if ($t < $best_nv_r) $t else $best_nv_r" | bc)
done
cmp -s "$B/src" "$B/mnt/f" || { echo "MISMATCH: nvrfs returned different bytes"; exit 1; }
mbs() { echo "scale=0; $MIB / $1" | bc; }
printf '%-34s %10s %10s %8s\n' "workload ($MIB MiB, best of $ROUNDS)" "raw MiB/s" "nvrfs MiB/s" "ratio"
printf '%-34s %10s %10s %8s\n' "sequential write (mirror, fsync)" "$(mbs "$best_raw_w")" "$(mbs "$best_nv_w")" \
  "$(echo "scale=2; $best_raw_w / $best_nv_w" | bc)"
printf '%-34s %10s %10s %8s\n' "sequential read (cold cache)" "$(mbs "$best_raw_r")" "$(mbs "$best_nv_r")" \
  "$(echo "scale=2; $best_raw_r / $best_nv_r" | bc)"
