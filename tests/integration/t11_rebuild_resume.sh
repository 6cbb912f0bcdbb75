#!/usr/bin/env bash
# nvrfsd killed during a rebuild: the member being rebuilt is recognised as
# such at the next start, the rebuild resumes from its checkpoint (not from
# zero), and the set ends clean with every file intact. Then once more with
# renames during the rebuild: they may carry a name to where the walk has
# already been, so the checkpoint goes at the first one and the restarted
# rebuild walks from the start.
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
# Killed as soon as a status shows it partway (on a busy machine a second
# status may already find it finished).
p=0
for _ in $(seq 100); do p=$(pct); [ "$p" -ge 30 ] && break; sleep 0.1; done
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
check "the rebuild got under way (killed at $p%)" test "$p" -ge 30
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

SP2=$T/spare2; mkdir "$SP2"
check "a second spare is added" quiet "$NVRCTL" spare add --config "$CONF" "$SP2"
check "failing the rebuilt member starts a rebuild onto it" quiet "$NVRCTL" member fail --config "$CONF" "$SP"
check "... and it is removed" quiet "$NVRCTL" member remove --config "$CONF" "$SP"
check "it writes a checkpoint" wait_for 10 test -s "$SP2/.nvrfs/rebuild.checkpoint"
mkdir "$MNT/moved"
for i in 1 2 3 4 5 6; do mv "$MNT/archive/a$i.mp4" "$MNT/moved/b$i.mp4"; done
mv "$MNT/archive/a7.mp4" "$MNT/archive/a20.mp4"; cp "$T/a7" "$T/a20"
check "the first rename dropped the checkpoint" test ! -e "$SP2/.nvrfs/rebuild.checkpoint"
sleep 1.5
check "and no later one was written" test ! -e "$SP2/.nvrfs/rebuild.checkpoint"
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
umount -l "$MNT"
start_daemon
check "the rebuild resumes from the start" wait_for 5 bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep RebuildResumed | tail -1 | grep -q 'from the start'"
check "and finishes" wait_for 30 bash -c "[ \$('$NVRCTL' log show --config '$CONF' --event alert | grep -c RebuildFinished) -ge 2 ]"
check "the set is clean" quiet "$NVRCTL" status --config "$CONF"
drop_caches
ok=0
for i in 1 2 3 4 5 6; do cmp -s "$T/a$i" "$MNT/moved/b$i.mp4" && ok=$((ok + 1)); done
for i in $(seq 8 20); do cmp -s "$T/a$i" "$MNT/archive/a$i.mp4" && ok=$((ok + 1)); done
check "all 19 recordings are intact under their new names ($ok)" test $ok -eq 19
check "the rebuilt member matches the survivor byte for byte" diff -r --exclude=superblock "$M1" "$SP2"
finish
