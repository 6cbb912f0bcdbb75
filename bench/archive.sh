#!/usr/bin/env bash
# Archive tier throughput (issue 16), side by side on one single-node Ceph
# (tests/support/ceph-cluster.sh: memstore OSD, radosgw on 127.0.0.1):
#  * move:  `nvrctl archive now` moving FILES recordings of SIZE_MB (upload,
#           read the whole object back and authenticate it, switch) against
#           `s3cmd put` of the same stored files from a member (upload only);
#  * read:  a cold sequential read (page cache dropped, nvrfsd's archive
#           cache emptied by a remount) of the archived files through the
#           mount, against the same files read locally through the mount
#           before they moved (and, for scale, `s3cmd get` of the objects).
# ROUNDS rounds, medians, ratios. Not part of `make test`.
#   bash bench/archive.sh        (FILES=8 SIZE_MB=32 ROUNDS=3)
# Objects are deleted after each round: the memstore OSD holds everything in RAM.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/${NVRFS_BUILD:-build}
FILES=${FILES:-8}; SIZE_MB=${SIZE_MB:-32}; ROUNDS=${ROUNDS:-3}
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/nvrfs-archive.XXXXXX")
CEPH=$ROOT/tests/support/ceph-cluster.sh
trap 'mountpoint -q "$W/mnt" && fusermount3 -u "$W/mnt"; bash "$CEPH" stop "$W/ceph" 2>/dev/null; sleep 0.3; rm -rf "$W"' EXIT
mkdir -p "$W/ceph"
read -r ENDPOINT ACCESS SECRET <<<"$(bash "$CEPH" start "$W/ceph" 2>/dev/null)"
printf '[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\nuse_https = False\nsignature_v2 = False\nmultipart_chunk_size_mb = 16\n' \
  "$ACCESS" "$SECRET" "${ENDPOINT#http://}" "${ENDPOINT#http://}" > "$W/s3cfg"
printf 'access_key = %s\nsecret_key = %s\n' "$ACCESS" "$SECRET" > "$W/cred"; chmod 600 "$W/cred"
s3cmd -c "$W/s3cfg" mb s3://peer >/dev/null
now() { date +%s.%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mount_set() { "$B/nvrfsd" --config "$W/conf" "$W/mnt"; }
umount_set() { fusermount3 -u "$W/mnt"; while pgrep -f "nvrfsd --config $W/conf" >/dev/null; do sleep 0.1; done; }
read_all() { local t0; drop; t0=$(now); cat "$W"/mnt/cam/*.mp4 > /dev/null; echo "$(now) - $t0" | bc; }

round() {  # -> "move_s s3cmd_put_s local_read_s archived_read_s s3cmd_get_s"
  local r=$1
  umount_set 2>/dev/null || true
  rm -rf "$W/m1" "$W/m2" "$W/state" "$W/conf"; mkdir -p "$W/m1" "$W/m2" "$W/mnt"
  "$B/nvrctl" init --member "$W/m1" --member "$W/m2" --host-key "$W/key" --config "$W/conf" >/dev/null
  printf 'control_socket = %s\nstate_dir = %s\narchive = s3://nvr/r%s\narchive_endpoint = %s\narchive_credentials = %s\narchive_after = 1d\n' \
    "$W/ctl.sock" "$W/state" "$r" "$ENDPOINT" "$W/cred" >> "$W/conf"
  echo "check_interval = 3600" >> "$W/conf"   # passes only when asked (archive now)
  mount_set
  mkdir "$W/mnt/cam"
  for i in $(seq "$FILES"); do head -c $((SIZE_MB << 20)) /dev/urandom > "$W/mnt/cam/s$i.mp4"; done
  touch -d '2 days ago' "$W"/mnt/cam/*.mp4
  local local_read; local_read=$(read_all)
  # The peer: the same stored files, as they are on member 1, put with s3cmd.
  local files t0 peer move arch
  files=$(find "$W/m1" -type f -size +1M ! -path '*/.nvrfs/*')
  drop; t0=$(now)
  # shellcheck disable=SC2086
  s3cmd -c "$W/s3cfg" put $files "s3://peer/r$r/" >/dev/null 2>&1
  peer=$(echo "$(now) - $t0" | bc)
  drop; t0=$(now)
  "$B/nvrctl" archive now --config "$W/conf" >/dev/null
  move=$(echo "$(now) - $t0" | bc)
  umount_set; mount_set   # an empty archive cache
  arch=$(read_all)
  # The peer for reads: the same objects fetched whole with s3cmd get.
  rm -rf "$W/get"; mkdir "$W/get"; t0=$(now)
  s3cmd -c "$W/s3cfg" get --recursive "s3://nvr/r$r/" "$W/get/" >/dev/null 2>&1
  get=$(echo "$(now) - $t0" | bc); rm -rf "$W/get"
  umount_set
  s3cmd -c "$W/s3cfg" del --recursive --force "s3://peer/r$r/" "s3://nvr/r$r/" >/dev/null 2>&1
  echo "$move $peer $local_read $arch $get"
}

for r in $(seq "$ROUNDS"); do round "$r"; done > "$W/results"
python3 - "$W/results" "$FILES" "$SIZE_MB" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
files, size = int(sys.argv[2]), int(sys.argv[3])
mib = files * size
med = [statistics.median(c) for c in zip(*rows)]
move, peer, local, arch, get = med
print(f"archive tier, {files} x {size} MiB, {len(rows)} rounds, medians (single-node Ceph, memstore, 127.0.0.1)")
print(f"  move:  nvrfs archive now {mib / move:7.1f} MiB/s (upload + full read-back + switch)   s3cmd put {mib / peer:7.1f} MiB/s   ratio {peer / move:.2f}x")
print(f"  read:  archived, cold   {mib / arch:7.1f} MiB/s   local, cold {mib / local:7.1f} MiB/s   ratio {local / arch:.2f}x")
print(f"         (s3cmd get of the same objects to a local disk {mib / get:7.1f} MiB/s: archived reads {get / arch:.2f}x of it)")
PY
