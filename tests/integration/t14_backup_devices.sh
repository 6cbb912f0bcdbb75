#!/usr/bin/env bash
# Backup devices (5.1.5.1, 5.2.9.1, 5.2.9.2): the udev rule parses; the hook,
# run with udev's environment, identifies a device on a loop device formatted
# in the test, refuses unknown and infected ones (ClamAV with a signature
# database made here: EICAR and an MD5 signature), admits an allowed clean one
# without leaving it mounted; backups to it are encrypted and verify and
# restore byte-identical; wrong passphrase, flipped byte, truncation and a full
# device each give their error; every step is in the audit log.
# test-locks: udev
. "$(dirname "$0")/lib.sh"
command -v mkfs.vfat >/dev/null || { echo "dosfstools is not installed"; exit 77; }
setup
DB=$T/clamdb; mkdir -p "$DB"
EICAR='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!H+H*'
printf 'Nvrfs.Test.Eicar:0:*:%s\n' "$(printf '%s' "$EICAR" | od -An -tx1 | tr -d ' \n')" > "$DB/test.ndb"
printf 'nvrfs-test-malware-sample\n' > "$T/sample.bin"
printf '%s:%s:Nvrfs.Test.Md5\n' "$(md5sum < "$T/sample.bin" | cut -d' ' -f1)" "$(stat -c %s "$T/sample.bin")" > "$DB/test.hdb"
printf 'clamav_db = %s\ndevice_allowlist = %s\n' "$DB" "$T/devices.allow" >> "$CONF"
printf 'a long and secret passphrase\n' > "$T/pass"; chmod 600 "$T/pass"
start_daemon
mkdir -p "$MNT/cam1" "$MNT/cam2"
for i in 1 2 3; do head -c 2000000 /dev/urandom > "$MNT/cam1/seg$i.mp4"; done
for i in 1 2; do head -c 1500000 /dev/urandom > "$MNT/cam2/seg$i.mp4"; done

# mkdev NAME SIZE FS: a file image formatted here, on a loop device
mkdev() {
  truncate -s "$2" "$T/$1.img"
  case $3 in ext4) mkfs.ext4 -q -F -L "$1" "$T/$1.img";; vfat) mkfs.vfat -n "${1^^}" "$T/$1.img" >/dev/null;; esac
  losetup -f --show "$T/$1.img" || { echo "no loop device"; exit 77; }
}
# vfat where this kernel has it, ext4 otherwise (both are what USB sticks carry)
FAT=ext4; grep -qw vfat /proc/filesystems && FAT=vfat
USB=$(mkdev usb 64M ext4); BAD=$(mkdev infected 32M "$FAT"); FULL=$(mkdev tiny 3M "$FAT")
LOOPS+=("$USB" "$BAD" "$FULL")   # detached by cleanup
echo "    devices: usb=$USB (ext4) infected=$BAD ($FAT) tiny=$FULL ($FAT)"
udev_hook() {  # udev_hook DEVNAME [ACTION]: the hook as udev would run it
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ACTION="${2:-add}" DEVNAME="$1" ID_BUS=usb ID_SERIAL_SHORT=SER-0001 \
    "$NVRCTL" device hook --config "$CONF"
}
# Loop devices have no serial in the udev database; give the one udev would.
export ID_SERIAL_SHORT=SER-0001

if command -v udevadm >/dev/null; then
  mkdir -p /run/udev/rules.d; cp "$ROOT/udev-rules/90-nvrfs-backup.rules" /run/udev/rules.d/
  out=$(udevadm test --action=add "/sys/class/block/$(basename "$USB")" 2>&1)
  rm -f /run/udev/rules.d/90-nvrfs-backup.rules
  echo "$out" | grep nvrfs | sed 's/^/    udevadm: /'
  check "udevadm test reads the rule file" grep -q 'Reading rules file: .*90-nvrfs-backup.rules' <<<"$out"
  check "  ... and reports no error in it" bash -c "! grep -q '90-nvrfs-backup.rules:[0-9]' <<<\"\$1\"" _ "$out"
fi

out=$(udev_hook "$USB"); rc=$?
check "an unknown device is refused by the hook (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'not on the allowlist' <<<'$out'"
check "  ... and is not mounted" bash -c "! findmnt -rn -S '$USB' >/dev/null"
check "  ... and DeviceRefused is alerted" has_alert DeviceRefused
out=$("$NVRCTL" device info --config "$CONF" "$USB" --json)
check "device info identifies it with libblkid" python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d['type']=='ext4' and d['label']=='usb' and len(d['uuid'])==36 and not d['allowed'] else 1)" "$out"
check "device allow records its UUID and serial" quiet "$NVRCTL" device allow --config "$CONF" "$USB" --serial SER-0001
check "device list shows it" bash -c "'$NVRCTL' device list --config '$CONF' | grep -q SER-0001"
out=$(udev_hook "$USB"); rc=$?
check "the allowed, clean device is admitted (exit $rc): $out" bash -c "[ $rc -eq 0 ] && grep -q 'ready for backup' <<<'$out'"
check "  ... and left unmounted" bash -c "! findmnt -rn -S '$USB' >/dev/null"
out=$(env -i PATH=/usr/bin:/bin ACTION=add DEVNAME="$USB" ID_BUS=usb ID_SERIAL_SHORT=OTHER "$NVRCTL" device hook --config "$CONF"); rc=$?
check "the same file system on a device with another serial is refused (exit $rc)" test $rc -eq 1

m=$T/prep; mkdir "$m"; mount "$BAD" "$m"; printf '%s' "$EICAR" > "$m/eicar.com"; mkdir "$m/docs"; cp "$T/sample.bin" "$m/docs/"; echo ok > "$m/readme.txt"; umount "$m"
check "allow the infected device too" quiet "$NVRCTL" device allow --config "$CONF" "$BAD" --serial SER-0001
out=$(udev_hook "$BAD"); rc=$?
check "an infected device is refused (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q '2 infected file' <<<'$out' && grep -q Nvrfs.Test.Eicar <<<'$out' && grep -q Nvrfs.Test.Md5 <<<'$out'"
check "  ... DeviceInfected is alerted" has_alert DeviceInfected
out=$("$NVRCTL" backup create --config "$CONF" --to "$BAD" --passphrase-file "$T/pass" 2>&1); rc=$?
check "no backup is written to an infected device (exit $rc)" bash -c "[ $rc -eq 1 ] && grep -q infected <<<'$out'"

out=$("$NVRCTL" backup create --config "$CONF" --to "$USB" --passphrase-file "$T/pass" 2>&1); rc=$?
echo "$out" | tail -2 | sed 's/^/    /'
check "backup create to the allowed device (exit $rc)" test $rc -eq 0
check "  ... the device is unmounted afterwards" bash -c "! findmnt -rn -S '$USB' >/dev/null"
mkdir "$T/usbview"; mount -o ro "$USB" "$T/usbview"
ARCH=$(ls "$T"/usbview/*.nvrbak | head -1); cp "$ARCH" "$T/a.nvrbak"; umount "$T/usbview"
check "  ... a complete archive and no partial one" bash -c "[ -n '$ARCH' ] && [[ '$ARCH' != *.partial ]]"
check "  ... which holds no recording name in clear" bash -c "! grep -a -q -e seg1.mp4 -e cam1 '$T/a.nvrbak'"
check "backup verify accepts it" quiet "$NVRCTL" backup verify --config "$CONF" "$T/a.nvrbak" --passphrase-file "$T/pass"
check "backup restore gives byte-identical recordings" bash -c "'$NVRCTL' backup restore --config '$CONF' '$T/a.nvrbak' --to '$T/restored' --passphrase-file '$T/pass' >/dev/null && diff -r '$MNT' '$T/restored'"
check "the backup is in the audit log with its size" bash -c "'$NVRCTL' log show --config '$CONF' --event backup | grep -q 'bytes=9000000'"

printf 'not the passphrase\n' > "$T/wrong"
err() { "$NVRCTL" backup verify --config "$CONF" "$1" --passphrase-file "${2:-$T/pass}" 2>&1; }
out=$(err "$T/a.nvrbak" "$T/wrong"); rc=$?
check "wrong passphrase (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'wrong passphrase' <<<'$out'"
cp "$T/a.nvrbak" "$T/flip.nvrbak"; flipbyte "$T/flip.nvrbak" 3000000
out=$(err "$T/flip.nvrbak"); rc=$?
check "flipped byte (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'fails authentication' <<<'$out'"
head -c 5000000 "$T/a.nvrbak" > "$T/cut.nvrbak"
out=$(err "$T/cut.nvrbak"); rc=$?
check "truncated archive (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q truncated <<<'$out'"
out=$("$NVRCTL" backup restore --config "$CONF" "$T/flip.nvrbak" --to "$T/r2" --passphrase-file "$T/pass" 2>&1)
check "a bad archive restores nothing" bash -c "[ -z \"\$(find '$T/r2' -type f 2>/dev/null)\" ]"

check "allow the tiny device" quiet "$NVRCTL" device allow --config "$CONF" "$FULL" --serial SER-0001
out=$("$NVRCTL" backup create --config "$CONF" --to "$FULL" --passphrase-file "$T/pass" 2>&1); rc=$?
check "a full device stops the backup (exit $rc): $(tail -1 <<<"$out")" bash -c "[ $rc -eq 1 ] && grep -q 'target is full' <<<'$out'"
mount -o ro "$FULL" "$T/usbview"
check "  ... leaving only an archive marked .incomplete" bash -c "ls '$T/usbview' | grep -q '\.nvrbak\.incomplete\$' && ! ls '$T/usbview' | grep -q '\.nvrbak\$'"
cp "$T"/usbview/*.incomplete "$T/inc.nvrbak"; umount "$T/usbview"
out=$(err "$T/inc.nvrbak"); rc=$?
check "  ... which verify reports as incomplete (exit $rc)" bash -c "[ $rc -eq 1 ] && grep -q -e 'final record' -e truncated <<<'$out'"
check "BackupFailed is alerted" has_alert BackupFailed

mkdir "$T/dirtarget"
out=$("$NVRCTL" backup create --config "$CONF" --to "$T/dirtarget" --camera cam2 --passphrase-file "$T/pass" --json 2>/dev/null)
check "a camera selection backs up only that camera" python3 -c "import json,sys; sys.exit(0 if json.loads(sys.argv[1])['files']==2 else 1)" "$out"
out=$("$NVRCTL" backup create --config "$CONF" --to "$T/dirtarget" --since 2099-01-01 --passphrase-file "$T/pass" 2>&1); rc=$?
check "an empty time range is an error, not an empty archive (exit $rc)" bash -c "[ $rc -eq 1 ] && grep -q 'no recordings' <<<'$out'"
if command -v cryptsetup >/dev/null; then
  truncate -s 24M "$T/luks.img"; head -c 64 /dev/urandom > "$T/luks.key"
  cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$T/luks.img" "$T/luks.key" >/dev/null 2>&1
  LUKS=$(losetup -f --show "$T/luks.img"); LOOPS+=("$LUKS")
  out=$("$NVRCTL" device info --config "$CONF" "$LUKS" --json)
  check "a LUKS volume is recognised with libcryptsetup" python3 -c "import json,sys; d=json.loads(sys.argv[1]); sys.exit(0 if d['luks'] and d['luks_version']=='LUKS2' else 1)" "$out"
  quiet "$NVRCTL" device allow --config "$CONF" "$LUKS"
  out=$(udev_hook "$LUKS"); rc=$?
  check "  ... and never mounted blindly, even when allowed (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'LUKS' <<<'$out'"
fi
blank=$(mkdev blank 8M none); LOOPS+=("$blank")
out=$(udev_hook "$blank"); rc=$?
check "a device without a file system is refused clearly (exit $rc): $out" bash -c "[ $rc -eq 1 ] && grep -q 'no file system' <<<'$out'"
out=$(udev_hook "$USB" remove); rc=$?
check "removal is recorded (exit $rc)" bash -c "'$NVRCTL' log show --config '$CONF' --event device-removed | grep -q '$USB'"
finish
