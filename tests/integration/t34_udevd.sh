#!/usr/bin/env bash
# Issue 18, udev for real: Debian's systemd-udevd (started here when none
# runs; it needs no systemd as PID 1) processes real kernel uevents for loop
# devices carrying file systems, plugged in and out with losetup and
# `udevadm trigger`. A test-only copy of the production rule, made from it by
# changing two things only — loop devices count as USB sticks, and the hook
# runs directly instead of through systemd-run — runs the hook from udev: an
# unknown device is refused and an allowed one admitted, each decision in the
# audit log; a device with no file system is not touched; removal is seen
# once. `nvrctl device watch` sees the add and the remove from udev's own
# netlink events. The production rule, installed beside it, parses cleanly
# (`udevadm test`) and does not touch a loop device.
# test-locks: udev
. "$(dirname "$0")/lib.sh"
UDEVD=/lib/systemd/systemd-udevd
[ -x "$UDEVD" ] || { echo "systemd-udevd is not installed"; exit 77; }
setup
RULES=/run/udev/rules.d
PROD=$RULES/90-nvrfs-backup.rules TEST_RULE=$RULES/99-nvrfs-test-loop.rules
STARTED_UDEVD=
udev_cleanup() {
    rm -f "$TEST_RULE" "$PROD"
    udevadm control --reload 2>/dev/null
    [ -n "$STARTED_UDEVD" ] && udevadm control --exit 2>/dev/null
}
trap 'udev_cleanup; cleanup' EXIT
if ! udevadm control --ping 2>/dev/null; then
    "$UDEVD" --daemon || { echo "cannot start systemd-udevd"; exit 77; }
    STARTED_UDEVD=1
    wait_for 10 udevadm control --ping
fi
DB=$T/clamdb; mkdir -p "$DB"
printf 'Nvrfs.Test.Never:0:*:6e7672667374657374\n' > "$DB/test.ndb"
printf 'clamav_db = %s\ndevice_allowlist = %s\n' "$DB" "$T/devices.allow" >> "$CONF"
start_daemon

cat > "$T/hook.sh" <<HOOK
#!/bin/sh
# Run by udevd with the device's properties in the environment.
echo "\$ACTION \$DEVNAME \$ID_BUS \$ID_SERIAL_SHORT" >> "$T/hook.log"
exec "$NVRCTL" device hook --config "$CONF" >> "$T/hook.out" 2>&1
HOOK
chmod +x "$T/hook.sh"
mkdir -p "$RULES"
install -m 644 "$ROOT/udev-rules/90-nvrfs-backup.rules" "$PROD"
sed -e 's#^SUBSYSTEM!="block", GOTO="nvrfs_backup_end"#&\nKERNEL=="loop[0-9]*", ENV{ID_BUS}="usb", ENV{ID_SERIAL_SHORT}="NVRFS-TEST-LOOP"#' \
    -e "s#/usr/bin/systemd-run [^\"]* /usr/sbin/nvrctl device hook#$T/hook.sh#" \
    -e 's/nvrfs_backup_end/nvrfs_test_loop_end/g' "$ROOT/udev-rules/90-nvrfs-backup.rules" > "$TEST_RULE"
same_rule() {
    diff <(sed "s#/usr/bin/systemd-run [^\"]* /usr/sbin/nvrctl device hook#LAUNCH#" "$ROOT/udev-rules/90-nvrfs-backup.rules") \
         <(sed -e "s/nvrfs_test_loop_end/nvrfs_backup_end/g" -e '/^KERNEL=="loop/d' -e "s#$T/hook.sh#LAUNCH#" "$TEST_RULE")
}
check "the test copy differs from the production rule only in the loop match and the launcher" same_rule
udevadm control --reload

# plug IMG: attach a loop device and announce it as udev would for a stick
plug() { local l; l=$(losetup -f --show "$1") || exit 77; LOOPS+=("$l"); udevadm trigger --action=add --settle "$l"; echo "$l"; }
unplug() { udevadm trigger --action=remove --settle "$1"; losetup -d "$1"; }
hook_ran() { grep -q "^$1 $2 usb NVRFS-TEST-LOOP" "$T/hook.log" 2>/dev/null; }
audited() { "$NVRCTL" log show --config "$CONF" --event "$1" 2>/dev/null | grep -q -- "$2"; }

truncate -s 32M "$T/stick.img"; mkfs.ext4 -q -F -L STICK "$T/stick.img"
echo "a recording's notes" > "$T/note.txt"
truncate -s 8M "$T/blank.img"   # no file system: not a backup device
STICK=$(plug "$T/stick.img")
wait_for 20 hook_ran add "$STICK"
check "udevd ran the hook from the rule for $STICK (add, ID_BUS and serial from udev)" hook_ran add "$STICK"
wait_for 20 audited device-refused "$STICK"
check "... unknown device refused, in the audit log" audited device-refused "$STICK"
check "... with the reason in its alert" audited alert "DeviceRefused: $STICK: .*not on the allowlist"
udevadm test --action=add "/sys/class/block/$(basename "$STICK")" > "$T/udevadm-test.out" 2>&1
check "udevadm test: the rules parse without a complaint about nvrfs's rules" \
    bash -c "! grep -iE 'nvrfs.*(invalid|error|unknown|ignor)' '$T/udevadm-test.out'"
check "... the test copy's hook is what runs for a loop device" grep -q "$T/hook.sh" "$T/udevadm-test.out"
check "... and the production rule does not touch it (no systemd-run)" bash -c "! grep -q 'systemd-run' '$T/udevadm-test.out'"
unplug "$STICK"
wait_for 20 hook_ran remove "$STICK"
check "removal seen through udev" hook_ran remove "$STICK"
sleep 1
check "... once (one hook run per remove event)" test "$(grep -c "^remove $STICK " "$T/hook.log")" = 1
check "... audited" audited device-removed "$STICK"

# Allowed now: plugged again, admitted after a scan.
quiet "$NVRCTL" device allow --config "$CONF" --uuid "$(blkid -s UUID -o value "$T/stick.img")" --serial NVRFS-TEST-LOOP --note "test stick"
STICK=$(plug "$T/stick.img")
wait_for 30 audited device-ready "$STICK"
check "an allowed device plugged in: scanned, admitted and ready (audit)" audited device-ready "$STICK"
check "... and left unmounted" bash -c "! grep -q '^$STICK ' /proc/mounts"
unplug "$STICK"

seen=$(wc -l < "$T/hook.log")
BLANK=$(plug "$T/blank.img")
sleep 2
check "a device with no file system is not touched by the rule" test "$(wc -l < "$T/hook.log")" = "$seen"
unplug "$BLANK"

# device watch: udev's own events (after udevd processed them), add and remove.
"$NVRCTL" device watch --config "$CONF" --all --count 2 > "$T/watch.out" 2>&1 &
W=$!
sleep 1
STICK=$(plug "$T/stick.img")
sleep 1; unplug "$STICK"
wait_for 30 bash -c "! kill -0 $W 2>/dev/null"
check "nvrctl device watch saw the add (ready) and the remove" \
    bash -c "grep -q '$STICK: ready for backup' '$T/watch.out' && grep -q '$STICK: removed' '$T/watch.out'"
kill "$W" 2>/dev/null
finish
