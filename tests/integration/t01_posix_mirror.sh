#!/usr/bin/env bash
# Everyday file operations through the mount behave like a native directory,
# and both members hold byte-identical stored trees.
. "$(dirname "$0")/lib.sh"
setup
start_daemon
REF=$T/ref; mkdir -p "$REF"

head -c 3000000 /dev/urandom > "$T/src.bin"
for d in "$MNT" "$REF"; do
  cp "$T/src.bin" "$d/copy.bin"
  dd if=/dev/urandom of="$d/dd.bin" bs=64k count=1 status=none 2>/dev/null
  mkdir -p "$d/cam1/2026-11-25"
  printf 'line1\n' > "$d/cam1/log.txt"; printf 'line2\n' >> "$d/cam1/log.txt"
  : > "$d/empty"
  printf 'abcdefghij' > "$d/t.txt"; truncate -s 4 "$d/t.txt"; truncate -s 70000 "$d/t.txt"
  dd if="$T/src.bin" of="$d/sparse.bin" bs=1000 count=5 seek=300 status=none
  printf 'X' | dd of="$d/copy.bin" bs=1 seek=1234567 conv=notrunc status=none
  mv "$d/cam1/log.txt" "$d/cam1/2026-11-25/log.txt"
  mkdir "$d/gone"; rmdir "$d/gone"
done
cp "$MNT/dd.bin" "$REF/dd.bin"   # random content: make the reference equal
check "same names and sizes as a native directory" diff <(cd "$REF" && find . -printf '%y %s %p\n' | grep -v '^d' | sort) \
                                               <(cd "$MNT" && find . -printf '%y %s %p\n' | grep -v '^d' | sort)
check "same contents as a native directory" diff -r "$REF" "$MNT"
check_not "rmdir of a non-empty directory fails" rmdir "$MNT/cam1" 2>/dev/null
check "statfs reports the members' space" bash -c "df -B1 --output=size '$MNT' | tail -1 | grep -q '[1-9]'"
for d in "$MNT" "$REF"; do mv "$d/t.txt" "$d/copy.bin"; done   # rename over an existing file
check "rename over a file replaces it" cmp "$MNT/copy.bin" "$REF/copy.bin"
for d in "$MNT" "$REF"; do rm "$d/dd.bin"; done
check "unlinked file is gone" test ! -e "$MNT/dd.bin"
check "members hold identical stored bytes" members_identical
check "no plaintext name on a member" bash -c "! find '$M1' '$M2' | grep -q -e cam1 -e sparse -e log.txt"

stop_daemon
start_daemon
check "contents survive a remount" diff -r "$REF" "$MNT"
check "status reports a clean set" "$NVRCTL" status --config "$CONF"
finish
