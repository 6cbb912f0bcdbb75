#!/usr/bin/env bash
# Runs every test: the doctest units and each scenario script in
# tests/integration (each on a real FUSE mount, own temp dir, own timeout).
# A scenario exits 0 (passed), 77 (skipped, with the reason on its last line)
# or anything else (failed). The last line is "N passed, N failed[, N skipped]".
#
# Scenarios run NVRFS_JOBS at a time (default: the number of CPUs; most of a
# scenario's time is a daemon or a recorder waiting). A scenario that shares
# something outside its temp dir says so in a header line, and the runner
# keeps it apart from the others that name the same thing:
#   # test-locks: NAME...   never at the same time as another holding NAME
#                           (build: writes build/; udev: system udev rules;
#                           ceph: a Ceph cluster's ports)
#   # test-alone            nothing else runs meanwhile (it measures the
#                           machine's memory or disks)
#   # test-slow: SECONDS    started before the others, longest first, so
#                           that it does not run on alone at the end
#                           (SECONDS: about what it takes on 2 cores)
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0
logdir=$(mktemp -d /tmp/nvrfs-test-logs.XXXXXX)
jobs=${NVRFS_JOBS:-$(nproc)}

# The doctest units run as the first job, beside the scenarios.
unit_report() {
  local line up uf
  line=$(grep 'test cases:' "$logdir/unit.log" | tail -1)
  up=$(sed -n 's/.*| *\([0-9]*\) passed.*/\1/p' <<<"$line")
  uf=$(sed -n 's/.*| *\([0-9]*\) failed.*/\1/p' <<<"$line")
  if [ -z "$up" ]; then
    echo "unit tests did not run"; cat "$logdir/unit.log"; uf=1; up=0
  elif [ "$uf" != 0 ]; then
    cat "$logdir/unit.log"
  fi
  echo "UNIT $line"
  passed=$((passed + up)); failed=$((failed + uf))
}

# NVRFS_TESTS: space-separated globs of scenario names to run (default all).
slow=() pending=()
for t in tests/integration/t*.sh; do
  name=$(basename "$t" .sh)
  if [ -n "${NVRFS_TESTS:-}" ]; then
    want=0
    for g in $NVRFS_TESTS; do case $name in $g) want=1;; esac; done
    [ "$want" = 1 ] || continue
  fi
  secs=$(sed -n 's/^# test-slow: *//p' "$t")
  if [ -n "$secs" ]; then slow+=("$secs $name"); else pending+=("$name"); fi
done
pending=(unit $(printf '%s\n' "${slow[@]}" | sort -rn | cut -d' ' -f2) "${pending[@]}")

locks_of() { [ "$1" = unit ] || sed -n 's/^# test-locks: *//p' "tests/integration/$1.sh"; }
is_alone() { [ "$1" != unit ] && grep -q '^# test-alone' "tests/integration/$1.sh"; }

declare -A name_of=() held=()
running=0 alone_running=0

startable() {
  local l
  [ "$alone_running" = 0 ] && [ "$running" -lt "$jobs" ] || return 1
  if is_alone "$1"; then [ "$running" = 0 ]; return; fi
  for l in $(locks_of "$1"); do [ -z "${held[$l]:-}" ] || return 1; done
}

start() {
  local name=$1 l
  local run=(bash "tests/integration/$name.sh")
  [ "$name" = unit ] && run=(./"${NVRFS_BUILD:-build}"/unit-tests)
  (
    s=$(date +%s)
    timeout --kill-after=10 "${NVRFS_TEST_TIMEOUT:-300}" "${run[@]}" > "$logdir/$name.log" 2>&1
    echo "$? $(( $(date +%s) - s ))" > "$logdir/$name.rc"
  ) &
  name_of[$!]=$name
  running=$((running + 1))
  if is_alone "$name"; then alone_running=1; fi
  for l in $(locks_of "$name"); do held[$l]=$name; done
}

report() {
  local name=$1 rc secs l
  read -r rc secs < "$logdir/$name.rc" || { rc=1; secs=?; }
  running=$((running - 1))
  if is_alone "$name"; then alone_running=0; fi
  for l in $(locks_of "$name"); do unset "held[$l]"; done
  if [ "$name" = unit ]; then unit_report; return; fi
  case $rc in
    0) passed=$((passed + 1)); echo "PASS $name (${secs}s)";;
    77) skipped=$((skipped + 1)); echo "SKIP $name: $(tail -1 "$logdir/$name.log")";;
    *) failed=$((failed + 1)); echo "FAIL $name (exit $rc, ${secs}s)"; sed 's/^/    | /' "$logdir/$name.log" | tail -60;;
  esac
}

while [ "${#pending[@]}" -gt 0 ] || [ "$running" -gt 0 ]; do
  rest=()
  for name in "${pending[@]}"; do
    if startable "$name"; then start "$name"; else rest+=("$name"); fi
  done
  pending=("${rest[@]}")
  [ "$running" -gt 0 ] || continue
  done_pid=
  wait -n -p done_pid "${!name_of[@]}"
  [ -n "$done_pid" ] || continue
  report "${name_of[$done_pid]}"
  unset "name_of[$done_pid]"
done
echo "logs: $logdir"
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
