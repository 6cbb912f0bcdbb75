#!/usr/bin/env bash
# The man pages render without groff warnings and document every option the
# programs accept.
. "$(dirname "$0")/lib.sh"
command -v man >/dev/null || { echo "man-db is not installed"; exit 77; }
for p in "$ROOT"/man/*.[0-9]; do
  warn=$(MANWIDTH=80 man --warnings -l "$p" 2>&1 >/dev/null)
  check "$(basename "$p") renders without warnings${warn:+: $warn}" test -z "$warn"
done
page=$(MANWIDTH=200 man -l "$ROOT/man/nvrfsd.8" 2>/dev/null)
for opt in $("$NVRFSD" --help | grep -o -- '--[a-z-]*' | sort -u); do
  check "nvrfsd(8) documents $opt" grep -q -- "$opt" <<<"$page"
done
conf=$(MANWIDTH=200 man -l "$ROOT/man/nvrfs.conf.5" 2>/dev/null)
for key in $("$NVRCTL" config get --member /nonexistent --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)))'); do
  check "nvrfs.conf(5) documents $key" grep -q "$key" <<<"$conf"
done
ctl=$(MANWIDTH=200 man -l "$ROOT/man/nvrctl.8" 2>/dev/null)
for verb in $("$NVRCTL" --help | awk '$1 == "nvrctl" {print $2}' | sort -u); do
  check "nvrctl(8) documents the verb $verb" grep -q "^ *nvrctl $verb" <<<"$ctl"
done
# Per-verb help (issue 18): every verb and sub-verb answers --help with its
# own synopsis, options, an example and exit statuses, and every option it
# shows is documented in nvrctl(8).
helpcheck() {  # WORDS... -> ok when the help is the verb's own and complete
  local out; out=$("$NVRCTL" "$@" --help 2>&1) || { echo "exit $?"; return 1; }
  grep -qE "^usage: nvrctl $*( |$)" <<<"$out" || { echo "$out" | head -2; return 1; }
  grep -q "^example:" <<<"$out" && grep -q "^exit status: " <<<"$out" && grep -q "^options:" <<<"$out" || return 1
  for opt in $(grep -o -- '--[a-z][a-z-]*' <<<"$out" | sort -u); do
    grep -q -- "$opt" <<<"$ctl" || { echo "$opt is not in nvrctl(8)"; return 1; }
  done
}
for verb in $("$NVRCTL" --help | awk '$1 == "nvrctl" {print $2}' | sort -u); do
  check "nvrctl $verb --help is its own, with options, example and exit status" helpcheck "$verb"
  for sub in $("$NVRCTL" "$verb" --help | grep -o 'Sub-verbs: [a-z, -]*' | sed 's/Sub-verbs: //; s/,//g'); do
    check "nvrctl $verb $sub --help too" helpcheck "$verb" "$sub"
    check "... and nvrctl(8) names $verb $sub" grep -q -- "$sub" <<<"$ctl"
  done
done
check_not "an unknown verb's --help is a usage error" quiet "$NVRCTL" frobnicate --help
finish
