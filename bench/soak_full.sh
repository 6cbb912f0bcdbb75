#!/usr/bin/env bash
# Soak of a recorder at its steady state (issue 11), not part of `make test`:
# 16 cameras write 2-second segments at a combined rate of 4x the set's
# capacity per SOAK_SECONDS (default 600 s), with `recycle = yes`, while a
# Frigate-style SQLite database in WAL mode commits every 0.5 s beside them.
# Members: two ext4 file systems of SOAK_MIB (default 1024) on loop devices.
# Reports (and exits 1 unless all hold): 0 ENOSPC seen by writers, 0 false
# alerts (TamperDetected, MemberFailed), 0 failed members, `log verify`
# clean, the database intact with every committed row, recycling strictly
# oldest-first.
#   bash bench/soak_full.sh            # the full 10 minutes
#   SOAK_SECONDS=60 bash bench/soak_full.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NVRCTL=$ROOT/build/nvrctl
SECS=${SOAK_SECONDS:-600}
MIB=${SOAK_MIB:-1024}
CAMS=16
B=$(mktemp -d "${BENCH_DIR:-/var/tmp}/nvrfs-soak.XXXXXX")
LOOPS=()
cleanup() {
  set +e
  mountpoint -q "$B/mnt" && fusermount3 -u "$B/mnt"
  sleep 0.5
  for m in "$B/m1" "$B/m2"; do mountpoint -q "$m" && umount "$m"; done
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
  rm -rf "$B"
}
trap cleanup EXIT
for m in m1 m2; do
  truncate -s "${MIB}M" "$B/$m.img"; mkfs.ext4 -q -F "$B/$m.img"
  l=$(losetup -f --show "$B/$m.img"); LOOPS+=("$l")
  mkdir -p "$B/$m"; mount "$l" "$B/$m"; rmdir "$B/$m/lost+found"
done
mkdir -p "$B/mnt"
"$NVRCTL" init --member "$B/m1" --member "$B/m2" --host-key "$B/host.key" --config "$B/nvrfs.conf" \
  --control-socket "$B/ctl.sock" >/dev/null
printf 'recycle = yes\nmin_free = 10%%\ncheck_interval = 2\n' >> "$B/nvrfs.conf"
"$ROOT/build/nvrfsd" --config "$B/nvrfs.conf" "$B/mnt"
cap=$(( $(stat -f -c '%b*%S' "$B/m1") ))
rate=$(( 4 * cap / SECS ))   # bytes per second, all cameras together
echo "soak: $CAMS cameras, ${SECS} s, set of $((cap >> 20)) MiB, $((rate >> 10)) KiB/s in all ($((rate * 8 / CAMS / 1000)) kbit/s a camera)"

python3 - "$B/mnt" "$SECS" "$CAMS" "$rate" > "$B/result.json" <<'PY'
import errno, json, os, sqlite3, sys, threading, time
mnt, secs, cams, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
seg_bytes = max(4096, rate * 2 // cams)              # one 2-second segment
blob = os.urandom(seg_bytes)
res = {"enospc": 0, "other_errors": 0, "segments": 0, "db_rows": 0, "db_errors": 0}
lock = threading.Lock()
end = time.time() + secs

def camera(c):
    d = os.path.join(mnt, "recordings", "cam%02d" % c)
    os.makedirs(d, exist_ok=True)
    k, t = 0, time.time() + (c * 2.0 / cams)           # staggered like real cameras
    while time.time() < end:
        time.sleep(max(0, t - time.time()))
        try:
            with open(os.path.join(d, "%06d.mp4" % k), "wb") as f:
                for i in range(0, seg_bytes, 65536):
                    f.write(blob[i:i + 65536])
            with lock: res["segments"] += 1
        except OSError as e:
            with lock: res["enospc" if e.errno == errno.ENOSPC else "other_errors"] += 1
        k += 1; t += 2.0

def database():
    db = sqlite3.connect(os.path.join(mnt, "frigate.db"))
    db.execute("pragma journal_mode=wal")
    db.execute("create table if not exists ev (id integer primary key, t real)")
    while time.time() < end:
        try:
            db.execute("insert into ev (t) values (?)", (time.time(),)); db.commit(); res["db_rows"] += 1
        except sqlite3.Error:
            res["db_errors"] += 1
        time.sleep(0.5)
    db.close()

ts = [threading.Thread(target=camera, args=(c,)) for c in range(cams)] + [threading.Thread(target=database)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(res))
PY
cat "$B/result.json"
fails=0
verdict() { if eval "$2"; then echo "  ok: $1"; else echo "  FAILED: $1"; fails=$((fails + 1)); fi; }
r() { python3 -c "import json; print(json.load(open('$B/result.json'))['$1'])"; }
alerts=$("$NVRCTL" alerts --all --config "$B/nvrfs.conf" || true)
records=$("$NVRCTL" log show --config "$B/nvrfs.conf" --json)
recycled=$(python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r.get("reason") == "recycle"))' <<<"$records")
rows=$(python3 -c "import sqlite3; print(sqlite3.connect('$B/mnt/frigate.db').execute('select count(*) from ev').fetchone()[0])")
integrity=$(python3 -c "import sqlite3; print(sqlite3.connect('$B/mnt/frigate.db').execute('pragma integrity_check').fetchone()[0])")
echo "segments written: $(r segments); recycled: $recycled; database rows: $rows"
verdict "0 ENOSPC seen by writers ($(r enospc))" '[ "$(r enospc)" = 0 ] && [ "$(r other_errors)" = 0 ]'
verdict "0 false alerts" '! grep -q -e TamperDetected -e MemberFailed <<<"$alerts"'
verdict "0 failed members (set clean)" '"$NVRCTL" status --config "$B/nvrfs.conf" | head -1 | grep -q ": clean$"'
verdict "log verify clean" '"$NVRCTL" log verify --config "$B/nvrfs.conf" >/dev/null'
verdict "database intact with every committed row ($rows = $(r db_rows), $integrity)" '[ "$rows" = "$(r db_rows)" ] && [ "$integrity" = ok ] && [ "$(r db_errors)" = 0 ]'
verdict "recycling ran ($recycled deletions)" '[ "$recycled" -gt 0 ]'
# Oldest first: the recycled files' modification times (record time - age) never go back.
verdict "deletions strictly oldest-first" 'python3 -c "
import json, sys, datetime
prev = None
for r in json.load(sys.stdin):
    if r.get(\"reason\") != \"recycle\": continue
    t = datetime.datetime.fromisoformat(r[\"time\"]).timestamp() - r[\"age_s\"]
    if prev is not None and t < prev - 1: sys.exit(1)
    prev = t
" <<<"$records"'
[ "$fails" -eq 0 ]
