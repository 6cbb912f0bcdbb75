#!/usr/bin/env bash
# nvrfsd killed during a rebuild: the member being rebuilt is recognised as
# such at the next start, the rebuild resumes from its checkpoint (not from
# zero), and the set ends clean with every file intact.
. "$(dirname "$0")/lib.sh"
setup
SP=$T/spare; mkdir "$SP"
echo "rebuild_max_rate = 8M" >> "$CONF"
start_daemon
mkdir -p "$MNT/archive"
for i in $(seq 20); do head -c 2000000 /dev/urandom > "$T/a$i"; cp "$T/a$i" "$MNT/archive/a$i.mp4"; done
check "spare add on a mounted set" quiet "$NVRCTL" spare add --config "$CONF" "$SP"
check "member fail starts the rebuild" quiet "$NVRCTL" member fail --config "$CONF" "$M2"
check "the failed member is removed" quiet "$NVRCTL" member remove --config "$CONF" "$M2"
pct() { "$NVRCTL" status --config "$CONF" --json | python3 -c 'import json,sys; print(int(json.load(sys.stdin).get("rebuild",{}).get("percent",0)))'; }
check "the rebuild gets under way" wait_for 10 bash -c "[ \$('$NVRCTL' status --config '$CONF' --json | python3 -c 'import json,sys; print(int(json.load(sys.stdin).get(\"rebuild\",{}).get(\"percent\",0)))') -ge 30 ]"
p=$(pct); echo "    killed at $p%"
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
umount -l "$MNT"
check "the rebuild was partway ($p%)" bash -c "[ $p -ge 30 ] && [ $p -lt 100 ]"
check "offline status shows the member as rebuilding" bash -c "'$NVRCTL' status --config '$CONF' | grep -q 'rebuilding .*spare'"
check "a checkpoint was left on the member" test -s "$SP/.nvrfs/rebuild.checkpoint"
start_daemon
check "the rebuild resumes from its checkpoint" wait_for 5 bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep RebuildResumed | grep -q checkpoint"
check "and finishes" wait_for 30 has_alert RebuildFinished
fin=$("$NVRCTL" log show --config "$CONF" --event alert | grep RebuildFinished | tail -1)
echo "    $fin"
check "files copied before the kill were skipped, not copied again" bash -c "grep -Eq 'copied, [1-9][0-9]* skipped' <<<'$fin'"
check "the set is clean" quiet "$NVRCTL" status --config "$CONF"
drop_caches
ok=0; for i in $(seq 20); do cmp -s "$T/a$i" "$MNT/archive/a$i.mp4" && ok=$((ok + 1)); done
check "all 20 recordings are intact ($ok)" test $ok -eq 20
check "the rebuilt member matches the survivor byte for byte" diff -r --exclude=superblock "$M1" "$SP"
check "the audit chain verifies on both" quiet "$NVRCTL" log verify --config "$CONF"
finish
