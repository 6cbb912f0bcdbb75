#!/usr/bin/env bash
# Three recorders (archive_churn.py) on one nvrfs that archives to a real
# single-node Ceph under constant space pressure (archive_when_free_below =
# 99%: every closed file is moved), for SECONDS (default 120). Then: every
# file reads as its recorder's model says after caches are dropped, every
# archived file has its object and every object an archived file, the scrub
# is clean, and no TamperDetected, MemberInconsistent or ArchiveUnreachable
# was raised (radosgw answers throughout). Not part of `make test` (minutes,
# random); run by hand as root, with NVRFS_BUILD=build-asan for the
# sanitizers:  bash tests/stress/archive_churn.sh [SECONDS]
. "$(dirname "$0")/../integration/lib.sh"
setup 256M
. "$ROOT/tests/integration/archive.inc"
start_ceph
archive_config nvr/churn "archive_after = 1d" "archive_when_free_below = 99%"
start_daemon
pids=()
for w in 1 2 3; do
  python3 "$ROOT/tests/stress/archive_churn.py" "$MNT/w$w" "$w$RANDOM" "${1:-120}" "$NVRCTL" "$CONF" "$T/w$w.json" &
  pids+=($!)
done
for p in "${pids[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.5; done; done
"$NVRCTL" archive now --config "$CONF" >/dev/null 2>&1   # the last moves
"$NVRCTL" archive now --config "$CONF" >/dev/null 2>&1   # and the deletions they queued
drop_caches
check "every file reads as its recorder wrote it, after caches are dropped" python3 - "$MNT" "$T" <<'PY'
import hashlib, json, os, sys
mnt, t = sys.argv[1:]
ok = True
for w in (1, 2, 3):
    m = json.load(open(f"{t}/w{w}.json"))
    if m["bad"]:
        print(f"w{w} read otherwise during the run:", m["bad"][:5]); ok = False
    for name, want in m["files"].items():
        try:
            got = hashlib.sha256(open(os.path.join(mnt, f"w{w}", name), "rb").read()).hexdigest()
        except OSError as e:
            print(name, e); ok = False; continue
        if got != want:
            print(f"w{w}/{name} differs"); ok = False
    extra = set(os.listdir(os.path.join(mnt, f"w{w}"))) - set(m["files"])
    if extra:
        print(f"w{w} has files its recorder deleted:", sorted(extra)[:5]); ok = False
sys.exit(0 if ok else 1)
PY
s3 ls -r s3://nvr/churn/ | awk '{print $4}' | sed 's|.*/||' | sort > "$T/objects"
python3 - "$M1" <<'PY' | sort > "$T/archived"
import os, sys
for d, dirs, files in os.walk(sys.argv[1]):
    dirs[:] = [x for x in dirs if x != '.nvrfs']
    for f in files:
        with open(os.path.join(d, f), 'rb') as fh:
            h = fh.read(24)
        if len(h) == 24 and h[6] == 0x40:  # kind 4: archived
            print(h[8:24].hex())
PY
log "$(wc -l < "$T/objects") objects, $(wc -l < "$T/archived") archived files"
check "every archived file has its object" bash -c "! comm -13 '$T/objects' '$T/archived' | grep ."
check "every object belongs to an archived file" bash -c "! comm -23 '$T/objects' '$T/archived' | grep ."
check "the scrub is clean" quiet "$NVRCTL" scrub --config "$CONF"
check_not "no TamperDetected, MemberInconsistent or ArchiveUnreachable" \
    bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -E 'TamperDetected|MemberInconsistent|ArchiveUnreachable'"
"$NVRCTL" archive status --config "$CONF"
stop_daemon
finish
