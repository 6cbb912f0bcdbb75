#!/usr/bin/env bash
# nvrfsd killed (SIGKILL) in the middle of writes: recordings finished before
# are intact, the set mounts again, the interrupted file reads back as a clean
# prefix of what was written, the two copies agree again and the audit chain
# verifies (a torn last record is cut, not mistaken for tampering).
. "$(dirname "$0")/lib.sh"
setup
start_daemon
head -c 2000000 /dev/urandom > "$T/keep.src"; cp "$T/keep.src" "$MNT/keep.mp4"
head -c 400000000 /dev/urandom > "$T/big.src"
for round in 1 2 3; do
  dd if="$T/big.src" of="$MNT/rec$round.mp4" bs=128k status=none 2>/dev/null &
  ddpid=$!
  sleep "0.$((2 + round))"
  kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=
  wait $ddpid; rc=$?
  check "round $round: the writer saw the daemon die (dd exit $rc)" test $rc -ne 0
  umount -l "$MNT"
  start_daemon
  drop_caches
  check "round $round: the recording finished before is intact" cmp -s "$MNT/keep.mp4" "$T/keep.src"
  size=$(stat -c %s "$MNT/rec$round.mp4")
  check "round $round: the interrupted recording ($size bytes) is a clean prefix" \
        cmp -s "$MNT/rec$round.mp4" <(head -c "$size" "$T/big.src")
  check "round $round: the automatic scrub after the unclean restart finishes" wait_for 20 bash -c "[ \$('$NVRCTL' log show --config '$CONF' --event alert | grep -c ScrubFinished) -eq $round ]"
  check "round $round: the copies are byte-identical again" members_identical
  check "round $round: the restart raised UncleanShutdown" bash -c "[ \$('$NVRCTL' log show --config '$CONF' --event alert | grep -c UncleanShutdown) -eq $round ]"
done
check "the audit chain verifies on both members" "$NVRCTL" log verify --config "$CONF"
check "recording works after the restarts" bash -c "cp '$T/keep.src' '$MNT/after.mp4' && cmp -s '$MNT/after.mp4' '$T/keep.src'"
finish
