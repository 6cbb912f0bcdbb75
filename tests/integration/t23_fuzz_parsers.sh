#!/usr/bin/env bash
# The parsers of everything an attacker may write (superblock, file header,
# names, audit frames, backup archives, config, recovery records) under a seeded mutation
# fuzzer for a bounded time: every malformed input must be refused with an
# nvrfs error, never a crash or another exception (`make fuzz` runs longer;
# under `make asan` memory errors are findings too).
. "$(dirname "$0")/lib.sh"
new_workdir
cp -r "$ROOT/tests/fuzz/corpus" "$T/corpus"
secs=${NVRFS_FUZZ_SECONDS:-24}
out=$("$ROOT/${NVRFS_BUILD:-build}/fuzz-parsers" "$T/corpus" "$secs" 2>&1); rc=$?
echo "$out"
check "every target has seeds and ran" bash -c "[ \$(grep -c ' inputs, ' <<<\"\$1\") -eq 8 ]" _ "$out"
check "no findings in $secs s (exit $rc)" test $rc -eq 0
finish
