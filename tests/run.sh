#!/usr/bin/env bash
# Runs every test: the doctest units, then each scenario script in
# tests/integration (each on a real FUSE mount, own temp dir, own timeout).
# A scenario exits 0 (passed), 77 (skipped, with the reason on its last line)
# or anything else (failed). The last line is "N passed, N failed[, N skipped]".
set -u
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0
logdir=$(mktemp -d /tmp/nvrfs-test-logs.XXXXXX)

echo "== unit tests"
if ./"${NVRFS_BUILD:-build}"/unit-tests > "$logdir/unit.log" 2>&1; then :; fi
line=$(grep 'test cases:' "$logdir/unit.log" | tail -1)
up=$(sed -n 's/.*| *\([0-9]*\) passed.*/\1/p' <<<"$line")
uf=$(sed -n 's/.*| *\([0-9]*\) failed.*/\1/p' <<<"$line")
if [ -z "$up" ]; then
  echo "unit tests did not run"; cat "$logdir/unit.log"; uf=1; up=0
elif [ "$uf" != 0 ]; then
  cat "$logdir/unit.log"
fi
echo "   $line"
passed=$((passed + up)); failed=$((failed + uf))

# NVRFS_TESTS: space-separated globs of scenario names to run (default all).
for t in tests/integration/t*.sh; do
  name=$(basename "$t" .sh)
  if [ -n "${NVRFS_TESTS:-}" ]; then
    want=0
    for g in $NVRFS_TESTS; do case $name in $g) want=1;; esac; done
    [ "$want" = 1 ] || continue
  fi
  start=$(date +%s)
  timeout --kill-after=10 "${NVRFS_TEST_TIMEOUT:-300}" bash "$t" > "$logdir/$name.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  case $rc in
    0) passed=$((passed + 1)); echo "PASS $name (${secs}s)";;
    77) skipped=$((skipped + 1)); echo "SKIP $name: $(tail -1 "$logdir/$name.log")";;
    *) failed=$((failed + 1)); echo "FAIL $name (exit $rc, ${secs}s)"; sed 's/^/    | /' "$logdir/$name.log" | tail -60;;
  esac
done
echo "logs: $logdir"
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
