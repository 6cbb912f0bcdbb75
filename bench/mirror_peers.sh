#!/usr/bin/env bash
# The peers an administrator would build instead of nvrfs (issue 17), side
# by side in one run on the same disk, each mirror on two loop-backed file
# systems of LOOP_GIB each:
#   btrfs     btrfs -d raid1 -m raid1 over two loop files
#   gcf-btrfs gocryptfs over that btrfs RAID1 (encryption + mirror + checksums)
#   nvrfs     nvrfs over two ext4 file systems on loop files
# Workloads (fio, psync): WRITERS sequential writers x SIZE_MIB each, 1 MiB
# writes, fsync at the end; then a cold sequential read of the same files
# (page cache dropped). WRITERS defaults to "8 1". ROUNDS rounds, targets
# interleaved, medians; ratios nvrfs/btrfs and nvrfs/gcf-btrfs. Not part of
# `make test`.   bash bench/mirror_peers.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/${NVRFS_BUILD:-build}
ROUNDS=${ROUNDS:-3}; SIZE_MIB=${SIZE_MIB:-192}; WRITERS=${WRITERS:-8 1}; LOOP_GIB=${LOOP_GIB:-4}
command -v mkfs.btrfs >/dev/null || { echo "btrfs-progs is not installed"; exit 77; }
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/nvrfs-peers.XXXXXX")
LOOPS=()
cleanup() {
  set +e
  for m in "$W/gplain" "$W/nv" ; do mountpoint -q "$m" && fusermount3 -u "$m"; done
  sleep 0.5
  for m in "$W/btrfs" "$W/e1" "$W/e2"; do mountpoint -q "$m" && umount "$m"; done
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
  rm -rf "$W"
}
trap cleanup EXIT
loop() { truncate -s "${LOOP_GIB}G" "$W/$1.img"; local l; l=$(losetup -f --show "$W/$1.img"); LOOPS+=("$l"); echo "$l"; }

# btrfs RAID1 and gocryptfs on it
b1=$(loop b1); b2=$(loop b2)
mkfs.btrfs -q -f -d raid1 -m raid1 "$b1" "$b2"
mkdir -p "$W/btrfs"; mount "$b1" "$W/btrfs"
mkdir -p "$W/btrfs/plain" "$W/btrfs/gcipher" "$W/gplain"
printf 'bench\n' > "$W/pass"
gocryptfs -q -init -passfile "$W/pass" "$W/btrfs/gcipher" >/dev/null
gocryptfs -q -passfile "$W/pass" "$W/btrfs/gcipher" "$W/gplain" 2>/dev/null  # (it complains of no syslog)
# nvrfs over two ext4 loop file systems
e1=$(loop e1); e2=$(loop e2)
for d in e1 e2; do mkdir -p "$W/$d"; done
mkfs.ext4 -q -F "$e1"; mkfs.ext4 -q -F "$e2"; mount "$e1" "$W/e1"; mount "$e2" "$W/e2"
rmdir "$W/e1/lost+found" "$W/e2/lost+found"
"$B/nvrctl" init --member "$W/e1" --member "$W/e2" --host-key "$W/key" --config "$W/conf" >/dev/null
printf 'control_socket = %s\nstate_dir = %s\n' "$W/ctl.sock" "$W/state" >> "$W/conf"
mkdir -p "$W/nv"; "$B/nvrfsd" --config "$W/conf" "$W/nv"

declare -A DIRS=([btrfs]="$W/btrfs/plain" [gcf-btrfs]="$W/gplain" [nvrfs]="$W/nv")
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
bw() {  # fio JSON on stdin -> MiB/s summed over jobs (write or read)
  python3 -c 'import json,sys; d=sys.stdin.read(); j=json.loads(d[d.index("{"):]); print(sum(x[sys.argv[1]]["bw"] for x in j["jobs"]) / 1024)' "$1"
}
one() {  # TARGET N -> "write_MiBs read_MiBs"
  local dir=${DIRS[$1]} n=$2 w r
  rm -rf "$dir/f"; mkdir -p "$dir/f"; drop
  w=$(fio --output-format=json --name=w --directory="$dir/f" --rw=write --bs=1M --size="${SIZE_MIB}M" --numjobs="$n" \
        --ioengine=psync --fsync_on_close=1 --end_fsync=1 --group_reporting=0 --fallocate=none | bw write)
  drop
  r=$(fio --output-format=json --name=w --directory="$dir/f" --rw=read --bs=1M --size="${SIZE_MIB}M" --numjobs="$n" \
        --ioengine=psync --group_reporting=0 | bw read)
  rm -rf "$dir/f"
  echo "$w $r"
}
for n in $WRITERS; do
  for r in $(seq "$ROUNDS"); do
    for t in btrfs gcf-btrfs nvrfs; do echo "$n $t $(one "$t" "$n")"; done
  done
done > "$W/results"
python3 - "$W/results" "$SIZE_MIB" "$ROUNDS" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for l in open(sys.argv[1]):
    n, t, w, r = l.split()
    rows[(int(n), t)].append((float(w), float(r)))
print(f"mirror peers, {sys.argv[2]} MiB per writer, {sys.argv[3]} rounds, medians (MiB/s), same disk, loop-backed")
for n in sorted({k[0] for k in rows}, reverse=True):
    med = {t: [statistics.median(c) for c in zip(*rows[(n, t)])] for (m, t) in rows if m == n}
    b, g, v = med["btrfs"], med["gcf-btrfs"], med["nvrfs"]
    print(f"  {n} writer(s): write btrfs {b[0]:7.1f}  gcf-btrfs {g[0]:7.1f}  nvrfs {v[0]:7.1f}   "
          f"nvrfs/btrfs {v[0]/b[0]:.2f}x  nvrfs/gcf-btrfs {v[0]/g[0]:.2f}x")
    print(f"  {n} writer(s): read  btrfs {b[1]:7.1f}  gcf-btrfs {g[1]:7.1f}  nvrfs {v[1]:7.1f}   "
          f"nvrfs/btrfs {v[1]/b[1]:.2f}x  nvrfs/gcf-btrfs {v[1]/g[1]:.2f}x")
PY
