#!/usr/bin/env bash
# Issue 18, the layout a newcomer meets: userspace/lib is in folders by
# concern, each with a README; includes name their folder and follow the
# dependency rules the README states; no source file is over 500 lines and
# no function over 80 (the verb help table is data, not logic).
. "$(dirname "$0")/lib.sh"
layout() {
python3 - "$ROOT" <<'PY'
import glob, os, re, sys
root = sys.argv[1]; os.chdir(root)
bad = []
allowed = {"base": set(), "store": {"base", "audit"}, "audit": {"base", "store"}, "admin": {"base", "store", "audit"},
           "transfer": {"base"}, "device": {"base"}, "product": {"base"}}
loose = [f for f in glob.glob("userspace/lib/*") if os.path.isfile(f)]
if loose: bad.append(f"files outside a folder: {loose}")
for d in allowed:
    if not os.path.isfile(f"userspace/lib/{d}/README.md"): bad.append(f"userspace/lib/{d} has no README.md")
for f in glob.glob("userspace/lib/*/*.[ch]pp"):
    d = f.split("/")[2]
    if d not in allowed: bad.append(f"{f}: unknown folder {d}"); continue
    for inc in re.findall(r'#include "([a-z_]+)/[a-z_]+\.hpp"', open(f).read()):
        if inc != d and inc not in allowed[d]: bad.append(f"{f} includes {inc}/ ({d}/ may include {sorted(allowed[d]) or 'nothing'})")
    for inc in re.findall(r'#include "([a-z_]+\.hpp)"', open(f).read()):
        bad.append(f"{f} includes {inc} without its folder")
src = glob.glob("userspace/**/*.[ch]pp", recursive=True) + glob.glob("fuse/*.[ch]pp")
for f in src:
    lines = open(f).read().split("\n")
    if len(lines) > 501: bad.append(f"{f}: {len(lines) - 1} lines (> 500)")
    i = 0
    while i < len(lines):
        l = lines[i]
        if l and not l[0].isspace() and l.rstrip().endswith("{") and "(" in l and not l.startswith(("namespace", "struct", "class", "enum")):
            depth, j = 0, i
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                if depth == 0: break
                j += 1
            n = j - i + 1
            if n > 80 and not (f.endswith("nvrctl/help.cpp") and "entries()" in l):
                bad.append(f"{f}:{i + 1}: a function of {n} lines (> 80): {l.strip()[:70]}")
            i = j + 1
        else:
            i += 1
for b in bad: print("   ", b)
print(f"    {len(src)} source files checked")
sys.exit(1 if bad else 0)
PY
}
check "folders, READMEs, include rules, file and function sizes" layout
finish
