#!/usr/bin/env bash
# Third-party list (5.6.1.2): `make sbom` derives the list from the real link;
# the SPDX document parses and names every library the programs load; the
# checked-in THIRD_PARTY.md lists exactly the generated packages.
# test-locks: build
. "$(dirname "$0")/lib.sh"
check "make sbom" quiet make -C "$ROOT" sbom
S=$ROOT/build/sbom.spdx.json
check "the SPDX 2.3 document parses" python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d['spdxVersion']=='SPDX-2.3' and len(d['packages'])>5 else 1)" "$S"
missing=""
for lib in $(ldd "$ROOT/build/release/nvrfsd" "$ROOT/build/release/nvrctl" | awk '/=>/ {print $3} /^\t\// {print $1}' | xargs -n1 basename | sort -u); do
  grep -q "$lib" "$S" || missing="$missing $lib"
done
check "every shared library loaded is in the SBOM${missing:+ (missing:$missing)}" test -z "$missing"
check "no library of unknown origin" bash -c "! grep -q UNKNOWN '$S'"
names() { grep '^| [a-z0-9]' "$1" | cut -d'|' -f2 | tr -d ' ' | sort; }
check "THIRD_PARTY.md lists exactly the packages of the real link (regenerate with make sbom)" \
  diff <(names "$ROOT/THIRD_PARTY.md") <(names "$ROOT/build/THIRD_PARTY.md")
check "the README points to it" grep -q THIRD_PARTY.md "$ROOT/README.md"
finish
