#!/usr/bin/env bash
# Application integrity (5.6.1.1): installed nvrfsd and nvrctl check the
# vendor-signed manifest and every installed file before doing anything else.
# A flipped byte in a binary, a modified udev rule, a missing signature, a
# manifest re-signed with another key and an edited manifest each make them
# refuse to start; nvrctl verify-install names what is wrong.
# test-locks: build
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/nvrfs-it.XXXXXX); trap 'rm -rf "$T"' EXIT
D=$T/root
quiet make -C "$ROOT" install DESTDIR="$D" || { echo "make install failed"; exit 1; }
I_NVRFSD=$D/usr/sbin/nvrfsd I_NVRCTL=$D/usr/sbin/nvrctl RULE=$D/lib/udev/rules.d/90-nvrfs-backup.rules
SIG=$D/usr/share/nvrfs/manifest.sig MAN=$D/usr/share/nvrfs/manifest

check "a clean installation verifies" quiet "$I_NVRCTL" verify-install
check "  ... and its programs run" bash -c "'$I_NVRFSD' --help >/dev/null && '$I_NVRCTL' --help >/dev/null"
check "the manifest covers binaries, rule and man pages" bash -c "grep -q 'usr/sbin/nvrfsd' '$MAN' && grep -q 'usr/sbin/nvrctl' '$MAN' && grep -q '90-nvrfs-backup.rules' '$MAN' && grep -q 'nvrctl.8' '$MAN'"
check "the build-tree programs do not demand a manifest" quiet "$NVRCTL" --help

refuses() {  # refuses "what" PATTERN: both programs stop with the pattern in their message
  local out1 rc1 out2 rc2
  out1=$("$I_NVRFSD" --help 2>&1); rc1=$?
  out2=$("$I_NVRCTL" status 2>&1); rc2=$?
  if [ $rc1 -eq 1 ] && [ $rc2 -eq 1 ] && grep -q "integrity check failed" <<<"$out1" && grep -q -- "$2" <<<"$out1$out2"; then
    pass "$1 -> refused: $(head -c 220 <<<"$out1")"
  else
    fail "$1 -> nvrfsd exit $rc1: $out1 / nvrctl exit $rc2: $out2"
  fi
}
cp "$I_NVRFSD" "$T/nvrfsd.good"
size=$(stat -c %s "$I_NVRFSD")
flipbyte "$I_NVRFSD" $((size - 200))
refuses "a flipped byte in the installed nvrfsd" "usr/sbin/nvrfsd is modified"
out=$("$I_NVRCTL" verify-install 2>&1); rc=$?
check "verify-install names the modified binary (exit $rc)" bash -c "[ $rc -eq 1 ] && grep -q 'modified  */usr/sbin/nvrfsd' <<<'$out'"
cp "$T/nvrfsd.good" "$I_NVRFSD"

cp "$RULE" "$T/rule.good"
echo 'RUN+="/tmp/evil"' >> "$RULE"
refuses "a modified udev rule" "90-nvrfs-backup.rules is modified"
cp "$T/rule.good" "$RULE"

mv "$SIG" "$T/sig.good"
refuses "an unsigned manifest" "no signed manifest"
mv "$T/sig.good" "$SIG"

cp "$MAN" "$T/man.good"
openssl genpkey -algorithm ed25519 -out "$T/other.key" 2>/dev/null
quiet bash "$ROOT/scripts/sign-release" "$T/other.key" "$D"
refuses "a manifest re-signed with another key" "not signed by the vendor key"
cp "$T/man.good" "$MAN"; quiet make -C "$ROOT" install DESTDIR="$D"   # restore the vendor signature

flipbyte "$I_NVRCTL" $(( $(stat -c %s "$I_NVRCTL") - 300 ))
newhash=$(sha256sum "$I_NVRCTL" | cut -d' ' -f1)
sed -i "s|^[0-9a-f]\{64\}  usr/sbin/nvrctl\$|$newhash  usr/sbin/nvrctl|" "$MAN"
refuses "a manifest edited to match a tampered binary" "not signed by the vendor key"
quiet make -C "$ROOT" install DESTDIR="$D"
check "a reinstall restores a verifying installation" quiet "$I_NVRCTL" verify-install
finish
