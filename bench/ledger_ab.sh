#!/usr/bin/env bash
# Cost of the namespace ledger and host anchor (issue 12): the same workloads
# against two builds, rounds interleaved (A B A B ...), medians reported as
# B/A ratios. Not part of `make test`.
#   bash bench/ledger_ab.sh OLD_BUILD_DIR [NEW_BUILD_DIR]   (default new: build)
# Workloads: create+close+unlink of 3000 small files; 16 camera writers x 12
# segments of 1 MiB written in 64 KiB pieces and closed; opens: 2000 closed
# 64 KiB recordings opened and read 3 times (each open is held to its place
# in the ledger). Wall time and nvrfsd CPU seconds (utime+stime) per round.
# Then the mount: both builds mount one set whose audit log holds
# MOUNT_FILES x 3 records (create, write, unlink), which the new build
# replays into its ledger before it serves.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=${1:?old build dir}; B=${2:-$ROOT/build}
ROUNDS=${ROUNDS:-3}
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/nvrfs-ab.XXXXXX")
trap 'mountpoint -q "$W/mnt" && fusermount3 -u "$W/mnt"; sleep 0.3; rm -rf "$W"' EXIT
run() {  # run BUILD WORKLOAD -> "wall cpu"
  local bd=$1 wl=$2
  rm -rf "$W/m1" "$W/m2" "$W/state" "$W/conf"; mkdir -p "$W/m1" "$W/m2" "$W/mnt"
  "$bd/nvrctl" init --member "$W/m1" --member "$W/m2" --host-key "$W/key" --config "$W/conf" >/dev/null
  printf "control_socket = %s\nstate_dir = %s\n" "$W/ctl.sock" "$W/state" >> "$W/conf"
  "$bd/nvrfsd" --config "$W/conf" "$W/mnt"
  local pid; pid=$(pgrep -n -f "nvrfsd --config $W/conf")
  if [ "$wl" = opens ]; then  # not timed: the recordings to open
    python3 - "$W/mnt" <<'PY'
import os, sys
d = sys.argv[1] + "/cam"; os.mkdir(d)
for i in range(2000):
    with open(f"{d}/f{i}.mp4", "wb") as f: f.write(os.urandom(65536))
PY
  fi
  local c0; c0=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
  local t0; t0=$(date +%s.%N)
  if [ "$wl" = opens ]; then
    python3 - "$W/mnt" <<'PY'
import sys
d = sys.argv[1] + "/cam"
for _ in range(3):
    for i in range(2000):
        with open(f"{d}/f{i}.mp4", "rb") as f: f.read()
PY
  elif [ "$wl" = meta ]; then
    python3 - "$W/mnt" <<'PY'
import os, sys
d = sys.argv[1] + "/cam"; os.mkdir(d)
for i in range(3000):
    with open(f"{d}/f{i}.mp4", "wb") as f: f.write(b"x" * 4096)
for i in range(3000): os.unlink(f"{d}/f{i}.mp4")
PY
  else
    for c in $(seq 16); do
      ( mkdir -p "$W/mnt/cam$c"; for s in $(seq 12); do
          python3 -c "
import sys
with open(sys.argv[1], 'wb') as f:
    b = bytes(65536)
    for _ in range(16): f.write(b)" "$W/mnt/cam$c/seg$s.mp4"; done ) &
    done
    wait
  fi
  local t1; t1=$(date +%s.%N)
  local cpu; cpu=$(awk -v c0="$c0" '{print ($14 + $15) / 100 - c0}' "/proc/$pid/stat")
  fusermount3 -u "$W/mnt"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  python3 -c "print(f'{$t1 - $t0:.3f} $cpu')"
}
for wl in ${WORKLOADS-meta streams opens}; do
  a=(); b=()
  for r in $(seq "$ROUNDS"); do a+=("$(run "$A" $wl)"); b+=("$(run "$B" $wl)"); done
  python3 - "$wl" "${a[@]}" -- "${b[@]}" <<'PY'
import statistics, sys
wl = sys.argv[1]; rest = sys.argv[2:]; i = rest.index("--")
A = [tuple(map(float, x.split())) for x in rest[:i]]; B = [tuple(map(float, x.split())) for x in rest[i + 1:]]
med = lambda xs, k: statistics.median(x[k] for x in xs)
print(f"{wl:8s} wall: old {med(A,0):.2f} s, new {med(B,0):.2f} s = {med(B,0)/med(A,0):.3f}x;  nvrfsd CPU: old {med(A,1):.2f} s, new {med(B,1):.2f} s = {med(B,1)/max(med(A,1),1e-9):.3f}x")
PY
done

# Mount time against the size of the audit log.
N=${MOUNT_FILES:-30000}
rm -rf "$W/m1" "$W/m2" "$W/state" "$W/conf"; mkdir -p "$W/m1" "$W/m2" "$W/mnt"
"$B/nvrctl" init --member "$W/m1" --member "$W/m2" --host-key "$W/key" --config "$W/conf" >/dev/null
printf "control_socket = %s\nstate_dir = %s\n" "$W/ctl.sock" "$W/state" >> "$W/conf"
"$B/nvrfsd" --config "$W/conf" "$W/mnt"
python3 - "$W/mnt" "$N" <<'PY'
import os, sys
d = sys.argv[1] + "/cam"; os.mkdir(d)
for i in range(int(sys.argv[2])):
    with open(f"{d}/f{i}.mp4", "wb") as f: f.write(b"x")
    if i % 2: os.unlink(f"{d}/f{i}.mp4")   # half recycled, half kept
PY
fusermount3 -u "$W/mnt"; sleep 1
records=$("$B/nvrctl" log verify --config "$W/conf" 2>&1 | grep -oE '[0-9]+ records' | head -1)
mount_once() {  # BUILD -> "seconds until the mount answers" "RSS KiB then"
  local t0; t0=$(date +%s.%N)
  "$1/nvrfsd" --config "$W/conf" "$W/mnt"
  local t1; t1=$(date +%s.%N)
  local pid; pid=$(pgrep -n -f "nvrfsd --config $W/conf")
  local rss; rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  fusermount3 -u "$W/mnt"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  python3 -c "print(f'{$t1 - $t0:.3f} $rss')"
}
# new: from the host's ledger checkpoint; new-full: checkpoint removed first
# (a damaged one, or members restored on purpose): the whole log replayed.
ma=(); mb=(); mc=()
for r in $(seq "$ROUNDS"); do
  ma+=("$(mount_once "$A")"); mb+=("$(mount_once "$B")")
  rm -f "$W"/state/*.ledger; mc+=("$(mount_once "$B")")
done
python3 - "$records" "${ma[@]}" -- "${mb[@]}" -- "${mc[@]}" <<'PY'
import statistics, sys
rec = sys.argv[1]; rest = sys.argv[2:]; i = rest.index("--"); j = rest.index("--", i + 1)
A, B, C = ([tuple(map(float, x.split())) for x in part] for part in (rest[:i], rest[i + 1:j], rest[j + 1:]))
med = lambda xs, k: statistics.median(x[k] for x in xs)
print(f"mount    with a log of {rec}: old {med(A,0):.2f} s; new {med(B,0):.2f} s from the checkpoint, "
      f"{med(C,0):.2f} s replaying the whole log; nvrfsd RSS after mount: old {med(A,1)/1024:.1f} MiB, "
      f"new {med(B,1)/1024:.1f} MiB (checkpoint), {med(C,1)/1024:.1f} MiB (whole log)")
PY
