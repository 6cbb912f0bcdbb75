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
finish
