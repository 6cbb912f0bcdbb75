#!/usr/bin/env bash
# The administrator's side of hostile input (issue 10, the low ones): a config
# another account can change, a value that smuggles in a second key, sizes
# that overflow, a host key owned by someone else, and file names that would
# forge lines or move the cursor in `nvrctl log show`.
. "$(dirname "$0")/lib.sh"
setup
refused() {  # refused "what" PATTERN command...: non-zero exit, the message, and nothing mounted by it
  local what=$1 pat=$2; shift 2
  local was; mountpoint -q "$MNT" && was=1 || was=0
  local out rc; out=$(timeout 10 "$@" 2>&1); rc=$?   # a regression would mount and block
  local now; mountpoint -q "$MNT" && now=1 || now=0
  if [ "$rc" -ne 0 ] && grep -q -- "$pat" <<<"$out" && [ "$now" = "$was" ]; then pass "$what -> exit $rc: $out"
  else fail "$what -> exit $rc (wanted non-zero and /$pat/): $out"; [ "$was" = 0 ] && [ "$now" = 1 ] && fusermount3 -u "$MNT"; fi
}

chmod 666 "$CONF"
refused "a world-writable config" "writable by group or others" "$NVRFSD" --config "$CONF" -f "$MNT"
chmod 644 "$CONF"; chown nobody "$CONF"
refused "a config owned by another account" "not by root" "$NVRFSD" --config "$CONF" -f "$MNT"
chown root "$CONF"

start_daemon
refused "a newline in alert_hook" "control characters" "$NVRCTL" config set alert_hook "$(printf 'true\nmember = /tmp/evil')" --config "$CONF"
check_not "... the config file gained no key" grep -q evil "$CONF"
refused "min_free that overflows" "bad value" "$NVRCTL" config set min_free 99999999999999999T --config "$CONF"

# File names that are terminal controls or fake log lines.
evil=$(printf 'cam\n2026-01-01T00:00:00Z #1 unlink ok root(0) fake\033[2J')
echo x > "$MNT/$evil"
out=$("$NVRCTL" log show --config "$CONF")
check "log show prints no raw escape character" bash -c "! grep -q \$'\\033' <<<\"\$1\"" _ "$out"
check "log show prints no forged line" bash -c "! grep -q '^2026-01-01T00:00:00Z #1 unlink' <<<\"\$1\"" _ "$out"
check "... the name is shown escaped" grep -qF 'cam\x0a2026' <<<"$out"

# A client that connects to the control socket and says nothing delays no one.
python3 -c "import socket,time; s=socket.socket(socket.AF_UNIX); s.connect('$T/ctl.sock'); time.sleep(8)" &
idle=$!
sleep 0.3
t0=$(date +%s%N); "$NVRCTL" status --config "$CONF" >/dev/null; t1=$(date +%s%N)
check "nvrctl status answers at once beside an idle control client ($(( (t1 - t0) / 1000000 )) ms)" test $(( (t1 - t0) / 1000000 )) -lt 2000
kill $idle 2>/dev/null; wait $idle 2>/dev/null
stop_daemon

cp "$KEY" "$T/other-owner.key"; chown nobody "$T/other-owner.key"
refused "a host key owned by another account" "owned by uid" "$NVRFSD" --member "$M1" --member "$M2" --host-key "$T/other-owner.key" -f "$MNT"
finish
