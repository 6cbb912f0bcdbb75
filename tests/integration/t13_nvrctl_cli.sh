#!/usr/bin/env bash
# nvrctl as an administrator meets it: help, exit codes (0 ok, 1 problem,
# 2 usage), JSON that parses, clear refusals of bad members and spares,
# alert acknowledgement, config get/set applied to the running daemon.
. "$(dirname "$0")/lib.sh"
setup 64m
start_daemon
head -c 20000000 /dev/urandom > "$MNT/rec.mp4"

# rc_is WANT "description" command...
rc_is() { local want=$1 d=$2; shift 2; local out rc; out=$("$@" 2>&1); rc=$?
  if [ $rc -eq "$want" ]; then pass "$d (exit $rc)"; else fail "$d: exit $rc, wanted $want: $out"; fi; }
json_ok() { "$@" 2>/dev/null | python3 -c 'import json,sys; json.load(sys.stdin)'; }

rc_is 0 "nvrctl --help" "$NVRCTL" --help
rc_is 0 "nvrctl status --help" "$NVRCTL" status --help
rc_is 2 "no verb" "$NVRCTL"
rc_is 2 "unknown verb" "$NVRCTL" frobnicate
rc_is 2 "unknown option" "$NVRCTL" status --config "$CONF" --bogus
rc_is 2 "member without a subcommand" "$NVRCTL" member --config "$CONF"
rc_is 2 "spare with a bad subcommand" "$NVRCTL" spare grow --config "$CONF" /tmp
rc_is 2 "log without show/verify" "$NVRCTL" log --config "$CONF"
rc_is 2 "config set of an unknown key" "$NVRCTL" config set --config "$CONF" bogus 1
rc_is 2 "config set of a bad value" "$NVRCTL" config set --config "$CONF" min_free lots
rc_is 0 "status of a clean set" "$NVRCTL" status --config "$CONF"
for v in "status" "log show" "log verify" "config get" "alerts --all"; do
  check "nvrctl $v --json parses" json_ok "$NVRCTL" $v --config "$CONF" --json
done

out=$("$NVRCTL" member fail --config "$CONF" /nonexistent 2>&1); rc=$?
check "failing an unknown member is refused (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'not a member' <<<'$out'"
mkdir "$T/full"; touch "$T/full/something"
out=$("$NVRCTL" spare add --config "$CONF" "$T/full" 2>&1); rc=$?
check "a non-empty directory as a spare is refused (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'not empty' <<<'$out'"
mkdir "$T/small"; mount -t tmpfs -o size=4m tmpfs "$T/small"; TMPFS_MOUNTS+=("$T/small")
out=$("$NVRCTL" spare add --config "$CONF" "$T/small" 2>&1); rc=$?
check "a spare too small for the data is refused (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'too small' <<<'$out'"
out=$("$NVRCTL" member add --config "$CONF" "$M1" 2>&1); rc=$?
check "adding a current member again is refused (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'already part' <<<'$out'"
check "refusals left no spare and no config change" bash -c "! grep -q '^spare' '$CONF'"
check "the daemon still serves the recording" test "$(stat -c %s "$MNT/rec.mp4")" -eq 20000000

check "member fail of one member is accepted" quiet "$NVRCTL" member fail --config "$CONF" "$M2"
out=$("$NVRCTL" member fail --config "$CONF" "$M1" 2>&1); rc=$?
check "failing the last complete member is refused (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'last complete member' <<<'$out'"
rc_is 1 "status of a degraded set" "$NVRCTL" status --config "$CONF"
id=$("$NVRCTL" alerts --config "$CONF" --json | python3 -c 'import json,sys; print([a["id"] for a in json.load(sys.stdin) if a["alert"]=="MemberFailed"][0])')
rc_is 1 "alerts lists unacknowledged alerts" "$NVRCTL" alerts --config "$CONF"
check "alerts --ack $id" quiet "$NVRCTL" alerts --config "$CONF" --ack "$id"
check "the acknowledged alert is no longer listed" bash -c "! '$NVRCTL' alerts --config '$CONF' --json | grep -q '\"id\": $id,'"
check "the acknowledgement is audited" bash -c "'$NVRCTL' log show --config '$CONF' --event alert-ack | grep -q alert-ack"
rc_is 2 "alerts --ack with a bad id" "$NVRCTL" alerts --config "$CONF" --ack x

check "config set min_free is applied live" bash -c "'$NVRCTL' config set --config '$CONF' min_free 99% | grep -q 'applied to the running'"
check "config get shows it" test "$("$NVRCTL" config get --config "$CONF" min_free)" = "99%"
check "and the daemon acts on it (SpaceLow)" wait_for 5 has_alert SpaceLow

stop_daemon
out=$("$NVRCTL" scrub --config "$CONF" 2>&1); rc=$?
check "scrub without a daemon says so (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'not running' <<<'$out'"
rc_is 1 "offline status reports a degraded set" "$NVRCTL" status --config "$CONF"
check "... with the member the administrator failed as failed" bash -c "'$NVRCTL' status --config '$CONF' | grep -q 'failed .*$M2'"

# A member the administrator failed stays out at the next mount: it used to
# be taken for merely stale and resynced back into the set (a disk failed
# for its errors rejoined at every restart), until member add takes it back.
start_daemon
check "after a restart the failed member is still failed" bash -c "'$NVRCTL' status --config '$CONF' | grep -q '^  failed .*$M2'"
check "... the set says degraded" test "$(state)" = degraded
check "... and the mount says why (MemberFailed: stays out)" bash -c "'$NVRCTL' alerts --config '$CONF' | grep 'MemberFailed' | grep -q 'stays out'"
check "... and the recording is served" test "$(stat -c %s "$MNT/rec.mp4")" -eq 20000000
check "member add takes it back" quiet "$NVRCTL" member add --config "$CONF" "$M2"
check "... rebuilt: the set is clean" wait_for 60 is_clean
check "... and the config lists it once" test "$(grep -c "^member = $M2\$" "$CONF")" = 1
check "failed and taken back a second time" bash -c "'$NVRCTL' member fail --config '$CONF' '$M2' >/dev/null && '$NVRCTL' member add --config '$CONF' '$M2' >/dev/null"
check "... rebuilt again: two members, clean" wait_for 60 is_clean
check "... as the same two copies" test "$("$NVRCTL" status --config "$CONF" | grep -c '^  active ')" = 2
# The same for a spare: failed, it stays out; spare add takes it back as a spare.
SP=$T/spare; mkdir "$SP"
quiet "$NVRCTL" spare add --config "$CONF" "$SP"
check "a failed spare ..." quiet "$NVRCTL" member fail --config "$CONF" "$SP"
stop_daemon
start_daemon
check "... stays failed after a restart" bash -c "'$NVRCTL' status --config '$CONF' | grep -q '^  failed .*$SP'"
check "... and the set is clean (a failed spare is no missing copy)" is_clean
check "... spare add takes it back as a spare" quiet "$NVRCTL" spare add --config "$CONF" "$SP"
check "... listed as a spare, once" bash -c "'$NVRCTL' status --config '$CONF' | grep -q '^  spare .*$SP' && [ \$(grep -c '^spare = $SP\$' '$CONF') = 1 ]"
stop_daemon
start_daemon
check "after another restart both members are active" test "$("$NVRCTL" status --config "$CONF" | grep -c '^  active ')" = 2
check "... and the set is clean" is_clean
check "the recording reads back whole" test "$(cat "$MNT/rec.mp4" | wc -c)" -eq 20000000
finish
