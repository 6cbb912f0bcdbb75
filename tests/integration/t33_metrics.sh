#!/usr/bin/env bash
# Issue 18, metrics: `nvrctl metrics` and the `metrics_textfile` that nvrfsd
# rewrites every check_interval are valid Prometheus text exposition
# (`promtool check metrics`, from Debian's prometheus package) and say what
# happened: bytes written and read, chunks authenticated, a tampered copy
# (failed copy, repair, TamperDetected unacknowledged), a failed member
# (degraded). The textfile goes away at unmount; without a daemon the verb
# fails.
. "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null || { echo "promtool is not installed (Debian package prometheus)"; exit 77; }
setup
PROM=$T/textfile/nvrfs.prom; mkdir "$T/textfile"
echo "metrics_textfile = $PROM" >> "$CONF"
start_daemon
metric() {  # NAME{LABELS} -> its value
  "$NVRCTL" metrics --config "$CONF" | awk -v k="$1" '$1 == k {print $2}'
}
valid() { promtool check metrics < "$1" > "$T/promtool.out" 2>&1 || { cat "$T/promtool.out"; return 1; }; }
mkdir "$MNT/cam1"
head -c 200000 /dev/urandom > "$MNT/cam1/a.mp4"
cat "$MNT/cam1/a.mp4" > /dev/null
"$NVRCTL" metrics --config "$CONF" > "$T/m1.txt"; rc=$?
check "nvrctl metrics exits 0" test $rc -eq 0
check "... and promtool check metrics finds nothing wrong" valid "$T/m1.txt"
check "... the set is clean" test "$(metric 'nvrfs_set_state{state="clean"}')" = 1
check "... two members, each active" test "$(grep -c '^nvrfs_member_state{.*state="active"} 1' "$T/m1.txt")" = 2
check "... bytes written counted (>= 200000: $(metric nvrfs_written_bytes_total))" test "$(metric nvrfs_written_bytes_total)" -ge 200000
check "... bytes read counted (>= 200000: $(metric nvrfs_read_bytes_total))" test "$(metric nvrfs_read_bytes_total)" -ge 200000
check "... chunks authenticated (>= 4)" test "$(metric nvrfs_chunks_authenticated_total)" -ge 4
check "... no TamperDetected unacknowledged" test "$(metric 'nvrfs_alerts_unacknowledged{kind="TamperDetected"}')" = 0
wait_for 5 test -s "$PROM"
check "the textfile is written for node_exporter" test -s "$PROM"
check "... and is valid too" valid "$PROM"
# A byte flipped on member 1's copy: read repairs it from member 2.
stored=$(find "$M1" -type f -size 200144c | head -1)
python3 - "$stored" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1000); b = f.read(1); f.seek(1000); f.write(bytes([b[0] ^ 0x5a]))
PY
echo 3 > /proc/sys/vm/drop_caches
for _ in 1 2 3 4; do cat "$MNT/cam1/a.mp4" > /dev/null; done
check "a tampered copy: chunk copies failed counted" test "$(metric nvrfs_chunk_copies_failed_total)" -ge 1
check "... the repair counted on member 1" test "$(metric "nvrfs_member_repaired_total{member=\"$M1\"}")" -ge 1
check "... TamperDetected unacknowledged" test "$(metric 'nvrfs_alerts_unacknowledged{kind="TamperDetected"}')" -ge 1
before=$(awk '$1 == "nvrfs_written_bytes_total" {print $2}' "$PROM")
head -c 100000 /dev/urandom > "$MNT/cam1/b.mp4"
grown() { test "$(awk '$1 == "nvrfs_written_bytes_total" {print $2}' "$PROM")" -gt "$before"; }
wait_for 5 grown
check "the textfile follows within check_interval (written bytes grew)" grown
quiet "$NVRCTL" member fail --config "$CONF" "$M2"
check "a failed member: the set is degraded" test "$(metric 'nvrfs_set_state{state="degraded"}')" = 1
check "... and the member says failed" bash -c "'$NVRCTL' metrics --config '$CONF' | grep -q '^nvrfs_member_state{member=\"$M2\",role=\"data\",state=\"failed\"} 1'"
"$NVRCTL" metrics --config "$CONF" > "$T/m2.txt"
check "... still valid" valid "$T/m2.txt"
stop_daemon
check "the textfile is gone after unmount (a stopped set shows as absent)" test ! -e "$PROM"
check_not "nvrctl metrics without a daemon fails" quiet "$NVRCTL" metrics --config "$CONF"
finish
