#!/usr/bin/env bash
# Write audit (5.2.7.2): every write session, create, rename, truncate and
# unlink is logged once, with an RFC 3339 time (ms + zone), uid, user name, pid,
# process name, path, bytes and result. Editing, deleting or reordering a record
# on a member is reported by `nvrctl log verify`, pointing at the record.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "python3 is not installed"; exit 77; }
setup
start_daemon
chmod 755 "$T"   # let the unprivileged recorder reach the mountpoint
mkdir "$MNT/pub"; chmod 1777 "$MNT/pub"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_nobody dd if=/dev/urandom of="$MNT/pub/n.mp4" bs=4k count=100 status=none
as_nobody mv "$MNT/pub/n.mp4" "$MNT/pub/m.mp4"
as_nobody truncate -s 1000 "$MNT/pub/m.mp4"
as_nobody sh -c "printf 'more' >> '$MNT/pub/m.mp4'"
check_not "rmdir of a non-empty directory fails" quiet rmdir "$MNT/pub"
as_nobody rm "$MNT/pub/m.mp4"
sleep 0.5

audit_json > "$T/log.json"
python3 - "$T/log.json" <<'PY' && pass "every record has the required fields, one per session" || fail "audit records (see above)"
import json, re, sys
recs = json.load(open(sys.argv[1]))
ok = True
def need(cond, msg):
    global ok
    if not cond:
        print("    " + msg); ok = False
ts = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$')
for r in recs:
    for k in ("seq", "time", "event", "uid", "user", "pid", "comm", "result", "prev", "mac"):
        need(k in r, f"record {r.get('seq')} lacks {k}")
    need(ts.match(r.get("time", "")), f"bad time {r.get('time')}")
mine = [r for r in recs if r.get("uid") == 65534]
ev = [(r["event"], r.get("path"), r["comm"]) for r in mine]
print("    nobody's records:", ev)
need([r["event"] for r in mine] == ["create", "write", "rename", "truncate", "write", "unlink"], "wrong event sequence")
w = mine[1]
need(w["path"] == "/pub/n.mp4" and w["bytes"] == 409600 and w["comm"] == "dd" and w["user"] == "nobody"
     and w["result"] == "ok" and w["pid"] > 0, f"dd write session: {w}")
need(mine[2].get("to") == "/pub/m.mp4", "rename target missing")
need(mine[3].get("bytes") == 1000, "truncate size missing")
need(mine[4].get("bytes") == 4 and mine[4]["comm"] == "sh", f"append session: {mine[4]}")
need(mine[5]["event"] == "unlink" and mine[5].get("bytes") == 1004, f"unlink: {mine[5]}")
fails = [r for r in recs if r["event"] == "rmdir"]
need(len(fails) == 1 and fails[0]["result"] == "ENOTEMPTY" and fails[0]["user"] == "root", f"failed rmdir: {fails}")
sys.exit(0 if ok else 1)
PY
check "the log on the members shows no path in clear" bash -c "! grep -a -q -e n.mp4 -e pub '$M1/.nvrfs/audit.log'"
check "log verify: both chains intact" quiet "$NVRCTL" log verify --config "$CONF"
stop_daemon

# frames: u32 len | payload | u32 len
python3 - "$M1/.nvrfs/audit.log" "$M2/.nvrfs/audit.log" <<'PY'
import struct, sys
def frames(p):
    d = open(p, 'rb').read(); out = []; i = 0
    while i < len(d):
        n = struct.unpack('>I', d[i:i+4])[0]; out.append(d[i:i+8+n]); i += 8 + n
    return out
f1 = frames(sys.argv[1])
f1[4] = f1[4][:40] + bytes([f1[4][40] ^ 1]) + f1[4][41:]          # edit record 5 on member 1
open(sys.argv[1], 'wb').write(b''.join(f1))
f2 = frames(sys.argv[2])
open(sys.argv[2] + '.orig', 'wb').write(b''.join(f2))
del f2[6]                                                          # delete record 7 on member 2
open(sys.argv[2], 'wb').write(b''.join(f2))
f3 = frames(sys.argv[2] + '.orig'); f3[2], f3[3] = f3[3], f3[2]   # reorder records 3 and 4
open(sys.argv[2] + '.reordered', 'wb').write(b''.join(f3))
PY
out=$("$NVRCTL" log verify --config "$CONF" 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
check "verify fails (exit $rc)" test $rc -eq 1
check "an edited record is pinpointed" grep -q "m1: BROKEN after 4 good records: record #5 .*authentication failed" <<<"$out"
check "a deleted record is pinpointed" grep -q "m2: BROKEN after 6 good records: record #7 .*deleted or reordered" <<<"$out"
mv "$M2/.nvrfs/audit.log.reordered" "$M2/.nvrfs/audit.log"
out=$("$NVRCTL" log verify --config "$CONF" --json 2>&1)
check "reordered records are pinpointed (JSON output parses)" python3 -c "
import json,sys; r = json.loads(sys.argv[1]); m2 = [x for x in r if x['member'].endswith('m2')][0]
sys.exit(0 if m2['first_bad'] == 3 and not m2['ok'] else 1)" "$out"
finish
