#!/usr/bin/env bash
# A member fails while ffmpeg records: made read-only, filled up, or its
# directory removed. The recorder must see no error, every segment must decode,
# a MemberFailed alert must be raised, and a member that comes back must be
# recognised as stale and resynced.
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; exit 77; }

record() {  # record SECONDS DIR: a real-time 8 Mbit/s camera in 1 s segments, in the background
  mkdir -p "$2"
  ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=25 -t "$1" -vf noise=alls=20:allf=t \
    -c:v libx264 -preset ultrafast -g 25 -b:v 8M -maxrate 8M -bufsize 4M -pix_fmt yuv420p \
    -f segment -segment_time 1 -reset_timestamps 1 "$2/seg_%03d.mp4" &
  FFPID=$!
}
all_decode() {
  local bad=0
  for f in "$1"/*.mp4; do [ -z "$(ffmpeg -nostdin -v error -i "$f" -f null - 2>&1)" ] || { echo "    bad: $f"; bad=1; }; done
  return $bad
}

log "--- member disk turns read-only (ext4 error, errors=remount-ro)"
setup_loop 256M
start_daemon
record 6 "$MNT/cam1"
sleep 2.5
loop_fs_error "$M2"
wait $FFPID; rc=$?
check "ffmpeg finished without error (exit $rc)" test $rc -eq 0
drop_caches
check "every segment decodes" all_decode "$MNT/cam1"
check "MemberFailed alert raised" wait_for 5 has_alert MemberFailed
check_not "status reports the set as not clean" quiet "$NVRCTL" status --config "$CONF"
check "status names the failed member" bash -c "'$NVRCTL' status --config '$CONF' | grep -q 'failed .*m2'"
md5_before=$(cd "$MNT/cam1" && md5sum *.mp4)
stop_daemon
dev=$(findmnt -n -o SOURCE "$M2"); umount "$M2"; fsck.ext4 -fy "$dev" >/dev/null 2>&1; mount "$dev" "$M2"
start_daemon
check "the returning member is resynced" has_alert MemberResynced
# It still carries the mark of the mount it dropped out of; the set itself
# was unmounted cleanly: no false alarm, no repairing scrub.
check_not "no UncleanShutdown alert: the set was unmounted cleanly" has_alert UncleanShutdown
# The resync is an online rebuild: the mount does not wait for it.
check "... and its rebuild finishes" wait_for 60 has_alert RebuildFinished
check "members identical after resync" members_identical
check "recordings unchanged after resync" test "$(cd "$MNT/cam1" && md5sum *.mp4)" = "$md5_before"
stop_daemon
cleanup; trap - EXIT

log "--- member runs out of space"
setup 256m 2m
start_daemon
record 5 "$MNT/cam1"
wait $FFPID; rc=$?
check "ffmpeg finished without error although a member filled up (exit $rc)" test $rc -eq 0
drop_caches
check "every segment decodes" all_decode "$MNT/cam1"
check "MemberFailed alert names ENOSPC" wait_for 5 bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep MemberFailed | grep -q ENOSPC"
stop_daemon
cleanup; trap - EXIT

log "--- member directory removed"
setup
start_daemon
record 5 "$MNT/cam1"
sleep 2
rm -rf "$M2"
wait $FFPID; rc=$?
check "ffmpeg finished without error (exit $rc)" test $rc -eq 0
drop_caches
check "every segment decodes" all_decode "$MNT/cam1"
check "MemberFailed alert raised" wait_for 5 bash -c "'$NVRCTL' log show --member '$M1' --host-key '$KEY' --event alert | grep -q MemberFailed"
md5_before=$(cd "$MNT/cam1" && md5sum *.mp4)
stop_daemon
out=$("$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?
check "a missing member refuses a normal start (exit $rc): $out" bash -c "[ $rc -ne 0 ] && grep -q 'm2' <<<'$out'"
start_daemon --degraded
check "--degraded starts on the survivor with the recordings intact" test "$(cd "$MNT/cam1" && md5sum *.mp4)" = "$md5_before"
finish
