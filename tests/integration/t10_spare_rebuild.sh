#!/usr/bin/env bash
# Hot spare (5.1.5.3): a member fails while ffmpeg records; the daemon promotes
# the spare and rebuilds it while recording continues; status shows each
# phase; afterwards every file is byte-identical and the set is clean.
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; exit 77; }
setup
SP=$T/spare; mkdir "$SP"
check "spare add works on an unmounted set" quiet "$NVRCTL" spare add --config "$CONF" "$SP"
echo "rebuild_max_rate = 20M" >> "$CONF"   # slow enough to watch the phases
start_daemon
mkdir -p "$MNT/archive" "$MNT/cam1"
for i in $(seq 12); do head -c 3000000 /dev/urandom > "$T/a$i"; cp "$T/a$i" "$MNT/archive/a$i.mp4"; done
check "status is clean before the failure" test "$(state)" = clean
check "status lists the spare" bash -c "'$NVRCTL' status --config '$CONF' | grep -q 'spare .*spare'"

ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=25 -t 8 -vf noise=alls=20:allf=t \
  -c:v libx264 -preset ultrafast -g 25 -b:v 8M -pix_fmt yuv420p -f segment -segment_time 1 "$MNT/cam1/seg_%03d.mp4" &
FF=$!
sleep 2
check "member fail is accepted" quiet "$NVRCTL" member fail --config "$CONF" "$M2"
phases=""
# State and progress from one status: on a busy machine a second one may
# already find the rebuild done.
for _ in $(seq 300); do
  out=$("$NVRCTL" status --config "$CONF")
  s=$(sed -n '1s/^set .* on .*: \([a-z]*\)$/\1/p' <<<"$out")
  case " $phases " in *" $s "*) ;; *) phases="$phases $s";; esac
  [ "$s" = clean ] && break
  if [ "$s" = rebuilding ] && [ -z "${pct:-}" ]; then pct=$(grep -o 'rebuild of .*' <<<"$out" | head -1); fi
  sleep 0.1
done
echo "    phases:$phases; progress seen: ${pct:-none}"
check "status went through rebuilding to clean" bash -c "[[ '$phases' == *rebuilding*clean* ]]"
check "status showed rebuild progress with an ETA" grep -q 'ETA' <<<"${pct:-}"
wait $FF; rc=$?
check "ffmpeg recorded through the failure and the rebuild (exit $rc)" test $rc -eq 0
sleep 1.5   # let the last segment's audit record land
drop_caches
ok=0; for i in $(seq 12); do cmp -s "$T/a$i" "$MNT/archive/a$i.mp4" && ok=$((ok + 1)); done
check "all 12 archived recordings are byte-identical ($ok)" test $ok -eq 12
bad=0; for f in "$MNT"/cam1/*.mp4; do [ -z "$(ffmpeg -nostdin -v error -i "$f" -f null - 2>&1)" ] || bad=$((bad + 1)); done
check "every segment recorded during the rebuild decodes" test $bad -eq 0
check "the rebuilt spare holds exactly the survivor's stored bytes" diff -r --exclude=superblock "$M1" "$SP"
for a in MemberFailed SpareActivated RebuildFinished; do check "alert $a raised" has_alert $a; done
check "member remove takes the failed member out" quiet "$NVRCTL" member remove --config "$CONF" "$M2"
check "the config no longer lists it" bash -c "! grep -q '^member = $M2\$' '$CONF'"
check "the set is clean" test "$(state)" = clean
stop_daemon
start_daemon
check "after a restart the former spare is an active member" bash -c "'$NVRCTL' status --config '$CONF' | grep -q 'active .*spare'"
check "and the set is clean" test "$(state)" = clean

# A member fails while another is being rebuilt, with a spare standing by:
# the spare waits for that rebuild, then takes the failed member's place.
# (It used to wait forever: the set stayed degraded with an idle spare.)
SP2=$T/third; SP3=$T/spare2; mkdir "$SP2" "$SP3"
quiet "$NVRCTL" member add --config "$CONF" "$SP2"   # a third copy, rebuilt at 20 MB/s
quiet "$NVRCTL" spare add --config "$CONF" "$SP3"
check "a member fails during the rebuild of another" quiet "$NVRCTL" member fail --config "$CONF" "$SP"
wait_for 60 is_clean
check "... the spare then took its place: the set is clean again ($(state))" test "$(state)" = clean
check "... with the spare an active member" bash -c "'$NVRCTL' status --config '$CONF' | grep -q 'active .*spare2'"
check "... holding the survivor's stored bytes" diff -r --exclude=superblock "$M1" "$SP3"
finish
