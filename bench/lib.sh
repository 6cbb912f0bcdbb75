# Shared by the benchmarks: a work dir on BENCH_DIR (default /var/tmp;
# BENCH_DIR=/dev/shm measures without disk noise), a two-member set mounted at
# $B/mnt, and cleanup on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NVRCTL=$ROOT/build/nvrctl
B=$(mktemp -d "${BENCH_DIR:-/var/tmp}/nvrfs-bench.XXXXXX")
cleanup() {
  mountpoint -q "$B/mnt" && fusermount3 -u "$B/mnt"
  for _ in $(seq 100); do pgrep -f "nvrfsd --config $B/" >/dev/null || break; sleep 0.1; done  # it finishes after the unmount
  rm -rf "$B"
}
trap cleanup EXIT
mount_set() {
  mkdir -p "$B/mnt"
  "$NVRCTL" init --member "$B/m1" --member "$B/m2" --host-key "$B/host.key" --config "$B/nvrfs.conf" \
    --control-socket "$B/ctl.sock" >/dev/null
  echo "state_dir = $B/state" >> "$B/nvrfs.conf"
  "$ROOT/build/nvrfsd" --config "$B/nvrfs.conf" "$B/mnt"
}
# fill_recordings MiB: 8 MiB incompressible "segments" under $B/mnt/cam1
fill_recordings() {
  mkdir -p "$B/mnt/cam1"
  head -c $((8 << 20)) /dev/urandom > "$B/seg"
  for i in $(seq $(($1 / 8))); do cp "$B/seg" "$B/mnt/cam1/seg$i.mp4"; done
}
now() { date +%s.%N; }
dropc() { sync; echo 3 > /proc/sys/vm/drop_caches; }
