#!/usr/bin/env bash
# Parts of issue 13 (POSIX where recorders and admins need it), each compared
# with a native directory where POSIX fixes the answer: create modes under the
# caller's umask, all-or-nothing mkdir at the path limit, sizes no member can
# hold (EFBIG) or that do not fit (ENOSPC, nothing written), what a reader
# sees of writes made through another descriptor (nvrfs sends write-only
# opens past the page cache), and a scrub that never reports success over
# what it could not check.
. "$(dirname "$0")/lib.sh"
setup 200M
start_daemon
NAT=$T/native; mkdir -p "$NAT"
modes() {  # modes DIR: the modes of files and a directory created under umask 0 and 022
  ( cd "$1" && umask 0 && touch m0 && python3 -c "import os; os.close(os.open('m4777', os.O_CREAT | os.O_WRONLY, 0o4777))" \
    && mkdir d0 && umask 022 && touch m22 && mkdir d22 && stat -c '%n %a' m0 m4777 m22 d0 d22 )
}
got=$(modes "$MNT"); want=$(modes "$NAT")
check "create and mkdir modes match a native directory: $(tr '\n' ' ' <<<"$got")" test -n "$want" -a "$got" = "$want"
owners() {  # owners DIR: owner and mode of what an unprivileged recorder creates there
  mkdir -m 1777 "$1/pub" && chmod 755 "$T" && setpriv --reuid=65534 --regid=65534 --clear-groups sh -c \
    "cd '$1/pub' && umask 022 && touch a && umask 0 && touch b && umask 027 && touch c && stat -c '%n %u:%g %a' a b c"
}
got=$(owners "$MNT"); want=$(owners "$NAT")
check "an unprivileged caller owns what it creates, modes as native: $(tr '\n' ' ' <<<"$got")" test -n "$want" -a "$got" = "$want"

n0=$(has_alert TamperDetected && echo 1 || echo 0)
deep() {  # deep DIR: mkdir down to the path limit; prints how deep it got and the errno of the next ls
  ( cd "$1" && mkdir -p a/w && cd a/w && c=$(printf 'd%.0s' $(seq 87)); p=.; n=0
    while mkdir "$p/$c" 2>/dev/null; do p=$p/$c; n=$((n + 1)); done
    echo "$n levels, then $(ls "$p/$c" 2>&1 | sed 's/.*: //')" )
}
out=$(deep "$MNT"); want=$(deep "$NAT")
check "a mkdir refused at the path limit leaves nothing behind: ls says '$out' (native: '$want')" test -n "$want" -a "$out" = "$want"
check "... no TamperDetected alert" bash -c "! '$NVRCTL' log show --config '$CONF' --event alert | grep -q TamperDetected"
check "... the whole tree is removable" rm -rf "$MNT/a"
check "... and scrub is clean (exit 0)" quiet "$NVRCTL" scrub --config "$CONF"

coherent() {  # coherent DIR: what readers (read and mmap) see of writes through a write-only descriptor
  python3 - "$1" <<'PY'
import mmap, os, sys
p = os.path.join(sys.argv[1], "coherent.bin")
with open(p, "wb") as f:
    f.write(b"A" * 5000)
r = os.open(p, os.O_RDONLY)
os.pread(r, 8192, 0)                                   # the page holding the end is cached
m = mmap.mmap(r, 4096, prot=mmap.PROT_READ)
m[:4096]                                               # and mapped
w = os.open(p, os.O_WRONLY)
os.pwrite(w, b"B" * 3000, 5000)                        # grows the file within and past that page
os.pwrite(w, b"C" * 10, 100)                           # overwrites mapped, cached bytes
a = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(a, b"D" * 7)
data = os.pread(r, 16384, 0)
print(len(data), data[95:115], data[4995:5005], data[7998:8010], m[95:115])
PY
}
got=$(coherent "$MNT" 2>&1); want=$(coherent "$NAT" 2>&1)
check "a reader sees at once what a write-only descriptor wrote, as natively: $got" test -n "$want" -a "$got" = "$want"

out=$(timeout 10 truncate -s 999999999999999 "$MNT/huge" 2>&1); rc=$?
check "a size no member can hold: EFBIG at once (exit $rc: $out)" grep -q "File too large" <<<"$out"
used0=$(df --output=used "$M1" | tail -1)
out=$(timeout 10 truncate -s 100G "$MNT/big" 2>&1); rc=$?
used1=$(df --output=used "$M1" | tail -1)
check "a size that does not fit: ENOSPC at once (exit $rc: $out)" grep -q "No space left" <<<"$out"
check "... and nothing was written ($used0 -> $used1 KiB used)" test $((used1 - used0)) -lt 1024
rm -f "$MNT/huge" "$MNT/big"

mkdir "$MNT/cam1" "$MNT/cam2"; echo a > "$MNT/cam1/a.mp4"; echo b > "$MNT/cam2/b.mp4"
stop_daemon
for m in "$M1" "$M2"; do  # cam1's directory IV gone on every member: nothing there can be checked
  for d in "$m"/*/; do [ -e "$d/.nvrfs.diriv" ] && [ "$(ls "$d" | wc -l)" = 1 ] && { rm -f "$d/.nvrfs.diriv"; break; }; done
done
start_daemon
out=$("$NVRCTL" scrub --config "$CONF" 2>&1); rc=$?
check "a scrub that could not check a directory exits 1 (exit $rc)" test $rc -eq 1
check "... and says what it could not check" grep -q "could not check" <<<"$out"
check "... and still checked the rest" grep -qE "scrub finished: [1-9]" <<<"$out"
finish
