#!/usr/bin/env bash
# Issue 15: privacy masks (5.5.1.2) and signed evidence packages. Two cameras
# record with ffmpeg (testsrc2), camera 1 gets a solid magenta rectangle and
# camera 2 a triangle; an export of 6 s is checked frame by frame: inside the
# mask only the fill colour, outside the source within codec tolerance (the
# source decoded from the same recordings at the same times, so a misaligned
# cut fails too). The package verifies with nvrctl and with openssl +
# sha256sum alone, and fails for a flipped byte, an edited manifest, an added
# file and a key other than the recorder's.
# test-slow: 35
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; exit 77; }
setup
start_daemon
mkdir "$MNT/cam1" "$MNT/cam2"
t0=$(date +%s)
for c in cam1 cam2; do
  ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=25 -t 12 -c:v libx264 -preset ultrafast -g 25 \
    -pix_fmt yuv420p -f segment -segment_time 2 "$MNT/$c/seg_%03d.mp4" &
done
FF=$(jobs -p | grep -v "^$DAEMON_PID$")

check "a mask with a coordinate outside the frame is refused" bash -c "! '$NVRCTL' mask set cam1 --rect 0.5,0.5,0.8,0.2 --config '$CONF' 2>/dev/null"
check "mask set (rectangle, magenta fill)" quiet "$NVRCTL" mask set cam1 --rect 0.25,0.25,0.5,0.25 --fill '#ff00ff' --config "$CONF"
printf '{"fill":"#00ff00","polygons":[[[0.1,0.9],[0.3,0.6],[0.5,0.9]]]}' > "$T/tri.json"
check "mask set from a file (a polygon)" quiet "$NVRCTL" mask set cam2 --file "$T/tri.json" --config "$CONF"
check "mask show prints the stored form" bash -c "'$NVRCTL' mask show cam1 --config '$CONF' | grep -q '\"fill\":\"#ff00ff\"'"
audit_has() { audit_json | python3 -c "import json,sys; sys.exit(0 if any($1 for r in json.load(sys.stdin)) else 1)"; }
check "each mask change is an audit record" audit_has "r.get('event') == 'mask-set' and r.get('path') == '/cam1' and len(r.get('mask_sha256', '')) == 64"
for p in $FF; do wait "$p"; done

since=$(date -d @$((t0 + 3)) +%Y-%m-%dT%H:%M:%S); until=$(date -d @$((t0 + 9)) +%Y-%m-%dT%H:%M:%S)
mkdir "$T/out"
check "export of both cameras" quiet "$NVRCTL" export --camera cam1,cam2 --since "$since" --until "$until" --to "$T/out" --config "$CONF"
P=$(ls -d "$T"/out/nvrfs-export-* | head -1)
for c in cam1 cam2; do
  d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$P/$c.mp4")
  check "$c.mp4 lasts the interval (6 s, frame-exact: $d)" python3 -c "import sys; sys.exit(0 if abs($d - 6.0) < 0.1 else 1)"
done

# Frames: every 5th, at 320x180, exported vs the source at the same times.
MOUNT=$MNT python3 - "$P/manifest.json" > "$T/src.ffconcat" <<'PY'
import json, os, subprocess, sys
m = json.load(open(sys.argv[1]))
cam = [c for c in m["cameras"] if c["camera"] == "cam1"][0]
print("ffconcat version 1.0")
for r in cam["recordings"]:
    p = os.environ["MOUNT"] + r["path"]
    s, d = subprocess.check_output(["ffprobe", "-v", "error", "-show_entries", "format=start_time,duration", "-of", "csv=p=0", p], text=True).strip().split(",")
    print(f"file '{p}'\nduration {float(d) - float(s):.6f}")
print(cam["offset"], file=sys.stderr)
PY
off=$(MOUNT=$MNT python3 -c "import json; m=json.load(open('$P/manifest.json')); print([c for c in m['cameras'] if c['camera']=='cam1'][0]['offset'])")
frames() { ffmpeg -v error "$@" -vf "select=not(mod(n\,5)),scale=320:180" -vsync 0 -f rawvideo -pix_fmt rgb24 -; }
frames -i "$P/cam1.mp4" > "$T/exp.raw"
frames -f concat -safe 0 -i "$T/src.ffconcat" -ss "$off" -t 6 > "$T/src.raw"
out=$(python3 - "$T/exp.raw" "$T/src.raw" <<'PY'
import sys
w, h = 320, 180
e, s = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
n = min(len(e), len(s)) // (w * h * 3)
x0, x1, y0, y1 = int(0.25 * w), int(0.75 * w), int(0.25 * h), int(0.5 * h)
bad_inside = 0; diff = 0; count = 0
for f in range(n):
    base = f * w * h * 3
    for y in range(h):
        for x in range(w):
            i = base + (y * w + x) * 3
            if x0 + 2 <= x < x1 - 2 and y0 + 2 <= y < y1 - 2:
                r, g, b = e[i], e[i + 1], e[i + 2]
                if abs(r - 255) > 40 or g > 40 or abs(b - 255) > 40: bad_inside += 1
            elif not (x0 - 4 <= x < x1 + 4 and y0 - 4 <= y < y1 + 4):
                diff += abs(e[i] - s[i]) + abs(e[i + 1] - s[i + 1]) + abs(e[i + 2] - s[i + 2]); count += 3
print(n, bad_inside, round(diff / max(count, 1), 2))
PY
)
read -r nf bad mad <<<"$out"
check "exported frames compared: $nf (of 30)" test "$nf" -ge 29
check "inside the mask every pixel is the fill colour ($bad off)" test "$bad" -eq 0
check "outside it the source within codec tolerance (mean abs difference $mad < 6)" python3 -c "import sys; sys.exit(0 if $mad < 6 else 1)"

check "export verify passes" quiet "$NVRCTL" export verify "$P" --config "$CONF"
check "openssl alone verifies the signature, sha256sum -c the files" \
  bash -c "cd '$P' && openssl pkeyutl -verify -pubin -inkey export.pub -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig >/dev/null && sha256sum --quiet -c SHA256SUMS"
fp=$("$NVRCTL" status --config "$CONF" | sed -n 's/^export key: //p')
check "the package's key is the one nvrctl status shows" test "$(openssl pkey -pubin -in "$P/export.pub" -outform DER | sha256sum | cut -c1-64)" = "$fp"
check "the export is audited, and the package carries that record" \
  audit_has "r.get('event') == 'export' and r.get('mac') == json.load(open('$P/manifest.json'))['export_record']['mac']"
check "... and the records of the recordings it came from" python3 -c "
import json; m = json.load(open('$P/manifest.json')); paths = {r['path'] for c in m['cameras'] for r in c['recordings']}
got = {r.get('path') for r in m['recording_records'] if r.get('event') == 'write'}
raise SystemExit(0 if paths and paths <= got else 1)"

cp -a "$P" "$T/pkg"
flipbyte "$T/pkg/cam1.mp4" 5000
check "a flipped byte in a clip fails export verify" bash -c "! '$NVRCTL' export verify '$T/pkg' --config '$CONF' >/dev/null"
check "... and sha256sum -c" bash -c "cd '$T/pkg' && ! sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1"
rm -rf "$T/pkg"; cp -a "$P" "$T/pkg"; sed -i 's/"masked": true/"masked": false/' "$T/pkg/manifest.json"
check "an edited manifest fails export verify" bash -c "! '$NVRCTL' export verify '$T/pkg' --config '$CONF' >/dev/null"
rm -rf "$T/pkg"; cp -a "$P" "$T/pkg"; echo extra > "$T/pkg/notes.txt"
check "an added file fails export verify" bash -c "! '$NVRCTL' export verify '$T/pkg' --config '$CONF' >/dev/null"
rm -rf "$T/pkg"; cp -a "$P" "$T/pkg"
openssl genpkey -algorithm ed25519 -out "$T/other.key" 2>/dev/null
openssl pkey -in "$T/other.key" -pubout -out "$T/pkg/export.pub"
for f in SHA256SUMS manifest.json; do
  s=$f.sig; [ $f = manifest.json ] && s=manifest.sig
  openssl pkeyutl -sign -inkey "$T/other.key" -rawin -in "$T/pkg/$f" -out "$T/pkg/$s"
done
check "a package re-signed with another key fails against the recorder's key" \
  bash -c "! '$NVRCTL' export verify '$T/pkg' --key '$fp' --config '$CONF' >/dev/null"
rm -rf "$T/pkg"; cp -a "$P" "$T/pkg"; cp "$T/pkg/SHA256SUMS.sig" "$T/pkg/manifest.sig"
check "a signature over another file fails" bash -c "! '$NVRCTL' export verify '$T/pkg' --config '$CONF' >/dev/null"

"$NVRCTL" export --camera cam1 --since "$since" --until "$until" --to "$T/out" --no-mask --config "$CONF" > "$T/nm.out" 2>&1; rc=$?
check "--no-mask without --reason is refused (exit $rc)" test $rc -eq 2 -a -n "$(grep -- --reason "$T/nm.out")"
rm -rf "$T/out2"; mkdir "$T/out2"
check "--no-mask with a reason exports" quiet "$NVRCTL" export --camera cam1 --since "$since" --until "$until" --to "$T/out2" \
  --no-mask --reason "court order 2026/17" --config "$CONF"
check "... audited with the reason, and alerted" audit_has "r.get('event') == 'export' and r.get('reason') == 'court order 2026/17' and r.get('masked') is False"
check "... ExportUnmasked alert" has_alert ExportUnmasked
echo "transport secret" > "$T/pass"
rm -rf "$T/out3"; mkdir "$T/out3"
check "--passphrase-file: one encrypted archive" quiet "$NVRCTL" export --camera cam1 --since "$since" --until "$until" --to "$T/out3" \
  --passphrase-file "$T/pass" --config "$CONF"
check "... and no plain package or clip left beside it" test "$(ls "$T/out3")" = "$(cd "$T/out3" && ls *.nvrbak)"
check "... nothing of the clip readable in it" bash -c "! grep -q ftyp '$T'/out3/*.nvrbak"
mkdir "$T/back"
check "... restored with nvrctl backup restore" quiet "$NVRCTL" backup restore "$T"/out3/*.nvrbak --to "$T/back" --passphrase-file "$T/pass" --config "$CONF"
check "... the restored package verifies with openssl alone" bash -c "cd '$T'/back/nvrfs-export-* && openssl pkeyutl -verify -pubin \
  -inkey export.pub -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig >/dev/null && sha256sum --quiet -c SHA256SUMS"
truncate -s 64M "$T/dev.img"; mkfs.ext4 -q -F "$T/dev.img"
l=$(losetup -f --show "$T/dev.img") || { echo "no loop device available"; exit 77; }
LOOPS+=("$l")
"$NVRCTL" export --camera cam1 --since "$since" --until "$until" --to "$l" --config "$CONF" > "$T/dev.out" 2>&1; rc=$?
check "an export to a device not on the allowlist is refused (exit $rc)" test $rc -ne 0 -a -n "$(grep 'not on the allowlist' "$T/dev.out")"
check "... and DeviceRefused is alerted" has_alert DeviceRefused
"$NVRCTL" export --camera cam9 --since "$since" --until "$until" --to "$T/out" --config "$CONF" > "$T/c9.out" 2>&1; rc=$?
check "a camera with no recordings: a clear error (exit $rc)" test $rc -ne 0 -a -n "$(grep -i 'cam9' "$T/c9.out")"
finish
