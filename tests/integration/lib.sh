# Shared helpers for scenario tests: a temp dir, a real nvrfsd mount, checks.
# Source it; call `setup` first. Everything is cleaned up on exit.
set -u
# Debian's own tools first: the suite runs against what `make deps` installs,
# not a user's shims (a pyenv shim starts python3 in 0.57 CPU-s, Debian's
# python3 in 0.045, and runs a Python a fresh Debian 12 does not have).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NVRFSD=$ROOT/${NVRFS_BUILD:-build}/nvrfsd
NVRCTL=$ROOT/${NVRFS_BUILD:-build}/nvrctl
FAILS=0
DAEMON_PID=

[ "$(id -u)" = 0 ] || { echo "needs root (FUSE mounts, tmpfs members)"; exit 77; }
[ -e /dev/fuse ] || { echo "/dev/fuse is missing"; exit 77; }

log() { echo "[$(date +%T)] $*"; }
pass() { echo "  ok: $*"; }
fail() { echo "  FAILED: $*"; FAILS=$((FAILS + 1)); }
# check "description" command...   — passes when the command succeeds
check() { local d=$1; shift; if "$@"; then pass "$d"; else fail "$d"; fi; }
# check_not "description" command... — passes when the command fails
check_not() { local d=$1; shift; if "$@"; then fail "$d"; else pass "$d"; fi; }
finish() { if [ "$FAILS" -eq 0 ]; then log "all checks passed"; exit 0; else log "$FAILS check(s) failed"; exit 1; fi; }

cleanup() {
  set +e
  [ -n "${MNT:-}" ] && mountpoint -q "$MNT" 2>/dev/null && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; }
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null
  # Its shutdown still writes to the members and the state dir.
  for _ in $(seq 50); do [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
  for m in "${TMPFS_MOUNTS[@]:-}"; do [ -n "$m" ] && umount -l "$m" 2>/dev/null; done
  for l in "${LOOPS[@]:-}"; do [ -n "$l" ] && losetup -d "$l" 2>/dev/null; done
  [ -n "${T:-}" ] && rm -rf "$T"
}

# setup [SIZE [SIZE2]]: members M1 M2 — plain directories, or tmpfs of SIZE
# (M2 of SIZE2 if given) — plus a host key and a config file.
new_workdir() {
  T=$(mktemp -d /tmp/nvrfs-it.XXXXXX)
  trap cleanup EXIT
  M1=$T/m1; M2=$T/m2; MNT=$T/mnt; KEY=$T/host.key; CONF=$T/nvrfs.conf
  TMPFS_MOUNTS=(); LOOPS=()
  mkdir -p "$M1" "$M2" "$MNT"
}

setup() {
  new_workdir
  if [ -n "${1:-}" ]; then
    mount -t tmpfs -o size="$1" tmpfs "$M1"; mount -t tmpfs -o size="${2:-$1}" tmpfs "$M2"
    TMPFS_MOUNTS+=("$M1" "$M2")
  fi
  init_set
}

# setup_loop SIZE: members on ext4 file systems on loop devices (real disks
# as far as the kernel is concerned, so disk errors can be injected).
setup_loop() {
  new_workdir
  for m in "$M1" "$M2"; do
    truncate -s "$1" "$m.img"; mkfs.ext4 -q -F "$m.img"
    local l; l=$(losetup -f --show "$m.img") || { echo "no loop device available"; exit 77; }
    LOOPS+=("$l"); TMPFS_MOUNTS+=("$m")
    mount -o errors=remount-ro "$l" "$m"
  done
  rmdir "$M1/lost+found" "$M2/lost+found" 2>/dev/null
  init_set
}

# The kernel's own ext4 error path: the file system turns read-only at once.
loop_fs_error() { echo 1 > "/sys/fs/ext4/$(basename "$(findmnt -n -o SOURCE "$1")")/trigger_fs_error"; }

init_set() {
  "$NVRCTL" init --member "$M1" --member "$M2" --host-key "$KEY" --config "$CONF" >/dev/null || { echo "nvrctl init failed"; exit 1; }
  printf "check_interval = 1\ncontrol_socket = %s\nstate_dir = %s\nmask_dir = %s\n" "$T/ctl.sock" "$T/state" "$T/masks" >> "$CONF"
}

# Something listens on the Unix socket $1 (a file left by a killed daemon does not).
control_answers() { python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$1" 2>/dev/null; }
# start_daemon [extra nvrfsd options...]: mount in the foreground, in the
# background; back once the mount is there and the control socket answers
# (nvrfsd starts it after mounting: an nvrctl right after the mount found no
# daemon under ASan in CI, and t39's `archive now` did nothing).
start_daemon() {
  "$NVRFSD" --config "$CONF" -f "$@" "$MNT" > "$T/nvrfsd.log" 2>&1 &
  DAEMON_PID=$!
  local sock end=$((SECONDS + 30)); sock=$(sed -n 's/^control_socket *= *//p' "$CONF" | tail -1)
  until mountpoint -q "$MNT" && { [ -z "$sock" ] || control_answers "$sock"; }; do
    kill -0 "$DAEMON_PID" 2>/dev/null && [ "$SECONDS" -lt "$end" ] ||
      { echo "nvrfsd did not mount (or its control socket did not answer):"; cat "$T/nvrfsd.log"; exit 1; }
    sleep 0.1
  done
}

stop_daemon() {
  fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
  wait "$DAEMON_PID" 2>/dev/null
  DAEMON_PID=
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# Inverts the byte at OFFSET of FILE (writing a fixed value left random data
# unchanged once in 256 runs, and the test failed for want of damage).
flipbyte() {
  python3 -c 'import sys; f = open(sys.argv[1], "r+b"); o = int(sys.argv[2]); f.seek(o); b = f.read(1)[0]; f.seek(o); f.write(bytes([b ^ 0xff]))' "$1" "$2"
}

# Stored trees of the two members, byte for byte (superblocks differ by design).
members_identical() {
  local d; d=$(diff -rq --exclude=superblock "$M1" "$M2" 2>&1) && return 0
  head -5 <<<"$d" | sed 's/^/    differs: /'
  return 1
}

# The stored file of the only regular file below a member's stored dir.
stored_files() { find "$1" -type f ! -path '*/.nvrfs/*' ! -name '.nvrfs.diriv' | sort; }
# The largest stored file of member $1: the one recording a test wrote there.
copy_of() { stored_files "$1" | xargs ls -S | head -1; }
# before_files, then a file is created: new_stored is its stored path below
# member 1 (what an offline attacker edits), however the names sort.
before_files() { stored_files "$M1" > "$T/before"; }
new_stored() { stored_files "$M1" | grep -vxF -f "$T/before" | head -1; }

quiet() { "$@" >/dev/null 2>&1; }
audit_json() { "$NVRCTL" log show --config "$CONF" --json; }
# The set's state as `nvrctl status` reports it: clean, degraded or rebuilding.
state() { "$NVRCTL" status --config "$CONF" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
is_clean() { [ "$(state)" = clean ]; }
# wait_for SECONDS command...: poll until the command succeeds, for at least
# SECONDS of wall time (a count of tries stretched "60" to over 300 s where
# each try, an audit log query under ASan beside other scenarios, was slow).
wait_for() { local end=$((SECONDS + $1 + 1)); shift; until "$@"; do [ "$SECONDS" -lt "$end" ] || return 1; sleep 0.1; done; }
has_alert() { "$NVRCTL" log show --config "$CONF" --event alert 2>/dev/null | grep -q "$1"; }
alerts_of() { "$NVRCTL" log show --config "$CONF" --event alert 2>/dev/null | grep -c "$1"; }
