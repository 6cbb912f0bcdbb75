#!/usr/bin/env bash
# Issue 16: the archive tier on a real single-node Ceph (ceph-mon, ceph-osd
# on memstore, radosgw on 127.0.0.1), reached through S3 with libcurl's SigV4.
# Wrong credentials move nothing and say why; old files (real ffmpeg segments
# and a multipart-sized file) move, free the members and read back
# byte-identical; a byte flipped in an object through plain S3 is EIO and
# TamperDetected, never data; a deleted object is EIO and scrub reports it;
# recall and a write bring a file back and delete its object (audited);
# radosgw killed during an upload loses nothing and the move completes after
# it returns; the archive never sees a name or plaintext.
# test-locks: ceph
# test-slow: 40
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null || { echo "ffmpeg is not installed"; exit 77; }
new_workdir
. "$(dirname "$0")/archive.inc"
init_set
start_ceph
log "Ceph up at $ENDPOINT"

# -- bad configuration and refused credentials --------------------------------
archive_config nvr/site1 "archive_after = 1d"
chmod 644 "$T/archive.credentials"
out=$(timeout 20 "$NVRFSD" --config "$CONF" -f "$MNT" 2>&1); rc=$?
check "credentials readable by others: nvrfsd refuses to start (exit $rc) and says why" \
    bash -c "[ $rc -ne 0 ] && grep -q 'must not be readable by group or others' <<<\"\$1\"" _ "$out"
printf 'access_key = %s\nsecret_key = wrong-secret\n' "$ACCESS" > "$T/archive.credentials"; chmod 600 "$T/archive.credentials"
start_daemon
mkdir -p "$MNT/cam1" "$MNT/cam2"
ffmpeg -loglevel error -f lavfi -i testsrc=size=640x360:rate=25 -t 6 -c:v libx264 -preset ultrafast -g 25 \
    -f segment -segment_time 2 -reset_timestamps 1 "$MNT/cam1/seg%03d.mp4"
head -c 40000000 /dev/urandom > "$MNT/cam2/big.bin"          # > 16 MiB: a multipart upload
head -c 3000000 /dev/urandom > "$MNT/cam2/recent.bin"         # newer than archive_after: stays
touch -d '2 days ago' "$MNT"/cam1/seg*.mp4 "$MNT/cam2/big.bin"
( cd "$MNT" && sha256sum cam1/seg*.mp4 cam2/*.bin ) > "$T/sums"
before=$(member_kib)
"$NVRCTL" archive now --config "$CONF" > "$T/now.out" 2>&1; rc=$?
check "wrong credentials: archive now fails (exit $rc) and names the refusal" \
    bash -c "[ $rc -ne 0 ] && grep -Eq 'SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|credentials' '$T/now.out'"
check "... ArchiveUnreachable is alerted" has_alert ArchiveUnreachable
check "... nothing moved: the members hold every byte, the bucket nothing" \
    bash -c "[ \$(du -sk '$M1' | cut -f1) -ge $((before - 100)) ] && ! s3cmd -c '$S3CFG' ls -r s3://nvr 2>/dev/null | grep -q ."
stop_daemon

# -- moves and reads back --------------------------------------------------------
printf 'access_key = %s\nsecret_key = %s\n' "$ACCESS" "$SECRET" > "$T/archive.credentials"
start_daemon
"$NVRCTL" archive now --config "$CONF" > "$T/now.out" 2>&1; rc=$?
check "archive now with good credentials exits 0" test $rc -eq 0
check "... the 3 segments and the big file moved; the recent file did not" \
    bash -c "[ \"\$('$NVRCTL' archive status --json --config '$CONF' | python3 -c 'import json,sys; a=json.load(sys.stdin); print(a[\"files_archived\"], a[\"files_local\"])')\" = '4 1' ]"
after=$(member_kib)
check "... the members gave back the space ($before KiB -> $after KiB)" test "$after" -lt $((before - 35000))
check "... modification times are kept" bash -c "[ \$(stat -c %Y '$MNT/cam2/big.bin') -lt \$((\$(date +%s) - 86400)) ]"
objs=$(s3 ls -r s3://nvr)
check "... 4 objects under the set's prefix, named by no file name" \
    bash -c "[ \$(grep -c 's3://nvr/site1/' <<<\"\$1\") = 4 ] && ! grep -Eq 'seg|big|cam' <<<\"\$1\"" _ "$objs"
s3 get --force "$(object_of nvr/site1 40000000)" "$T/obj.bin" >/dev/null 2>&1
no_plaintext() {  # OBJECT FILE: no 4 KiB piece of FILE's first MiB occurs in OBJECT
  python3 - "$1" "$2" <<'PY'
import sys
obj = open(sys.argv[1], 'rb').read(); plain = open(sys.argv[2], 'rb').read(1 << 20)
sys.exit(1 if any(plain[i:i + 4096] in obj for i in range(0, len(plain), 4096)) else 0)
PY
}
check "... an object holds no plaintext of its file" no_plaintext "$T/obj.bin" "$MNT/cam2/big.bin"
drop_caches
check "archived files read back byte-identical (sha256)" bash -c "cd '$MNT' && sha256sum -c --quiet '$T/sums'"
check "... and ffprobe reads an archived segment" bash -c "ffprobe -v error -show_entries format=duration -of csv=p=0 '$MNT/cam1/seg001.mp4' | grep -q '^2\\.'"
check "status shows the tier" bash -c "'$NVRCTL' status --config '$CONF' | grep -q '^archive: s3://nvr/site1 (reachable): 4 file(s) archived'"
metrics_ok() { "$NVRCTL" metrics --config "$CONF" > "$T/metrics.txt" && promtool check metrics < "$T/metrics.txt" >/dev/null 2>&1 &&
  grep -q '^nvrfs_archive_files{where="archived"} 4$' "$T/metrics.txt" && grep -q '^nvrfs_archive_reachable 1$' "$T/metrics.txt"; }
check "nvrctl metrics shows the tier and passes promtool" metrics_ok
check "the move is audited with its object" bash -c "'$NVRCTL' log show --config '$CONF' --event archive | grep -q 'big.bin'"
check "scrub passes over archived files (their objects are there)" bash -c "'$NVRCTL' scrub --config '$CONF' >/dev/null"
# The read cache is on the host's disk: a block there that does not
# authenticate is fetched fresh, no alarm, and replaced (it once stayed,
# and every read of it went to the store twice).
OBJ1=$(object_of nvr/site1 "$(stat -c %s "$MNT/cam1/seg001.mp4")")
CB1=$(cache_block "$OBJ1" 0)
check "the read cache holds seg001's block" test -s "$CB1"
flipbyte "$CB1" 1000
t0=$(alerts_of TamperDetected); drop_caches
check "a byte flipped in a cached block: seg001 still reads byte-identical" \
    bash -c "cd '$MNT' && grep seg001 '$T/sums' | sha256sum -c --quiet"
check "... without TamperDetected (the store's copy is good)" test "$(alerts_of TamperDetected)" -eq "$t0"
drop_caches; cat "$MNT/cam1/seg001.mp4" > /dev/null
s3 get --force "$OBJ1" "$T/seg001.obj" >/dev/null 2>&1
check "... and the cached block is the store's again" cmp -s "$CB1" "$T/seg001.obj"
stop_daemon

# -- a hostile archive -----------------------------------------------------------
OBJ=$(object_of nvr/site1 40000000)
s3 get --force "$OBJ" "$T/obj.bin" >/dev/null 2>&1
flipbyte "$T/obj.bin" 5000000
s3 put "$T/obj.bin" "$OBJ" >/dev/null 2>&1
start_daemon
check_not "a byte flipped in the object through plain S3: the read fails" bash -c "cat '$MNT/cam2/big.bin' > /dev/null 2>&1"
check "... with EIO at the damaged chunk (76), and the bytes before it read" \
    bash -c "dd if='$MNT/cam2/big.bin' of=/dev/null bs=1M count=4 2>/dev/null && dd if='$MNT/cam2/big.bin' of=/dev/null bs=64K skip=76 count=1 2>&1 | grep -q 'Input/output error'"
check "... TamperDetected names the archive object" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep TamperDetected | grep -q 'archive object'"
SEG=$(object_of nvr/site1 "$(stat -c %s "$MNT/cam1/seg002.mp4")")
s3 del "$SEG" >/dev/null 2>&1
check_not "an object deleted in the bucket: the read fails" bash -c "cat '$MNT/cam1/seg002.mp4' > /dev/null 2>&1"
"$NVRCTL" scrub --json --config "$CONF" > "$T/scrub.json" 2>&1; rc=$?
check "... scrub reports it (exit $rc, archive_missing 1)" \
    bash -c "[ $rc -ne 0 ] && python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s[\"archive_missing\"]==1 else 1)' '$T/scrub.json'"
check "... and alerts it" bash -c "'$NVRCTL' log show --config '$CONF' --event alert | grep -q 'missing from the archive'"
# Cut short: the store answers every request, with less than the file holds.
head -c 20000000 "$T/obj.bin" > "$T/cut.bin"; s3 put "$T/cut.bin" "$OBJ" >/dev/null 2>&1
u0=$(alerts_of ArchiveUnreachable); t0=$(alerts_of TamperDetected)
check "an object cut short in the bucket: a read past the cut fails with EIO" \
    bash -c "dd if='$MNT/cam2/big.bin' of=/dev/null bs=64K skip=460 count=1 2>&1 | grep -q 'Input/output error'"
check "... TamperDetected is raised" test "$(alerts_of TamperDetected)" -gt "$t0"
check "... not ArchiveUnreachable: the store answered" test "$(alerts_of ArchiveUnreachable)" -eq "$u0"

# -- recall and write-back -------------------------------------------------------
OBJ0=$(object_of nvr/site1 "$(stat -c %s "$MNT/cam1/seg000.mp4")")
cat "$MNT/cam1/seg000.mp4" > /dev/null
check "a read of an archived file fills the read cache" test -s "$(cache_block "$OBJ0" 0)"
check "archive recall brings a file back" "$NVRCTL" archive recall "$MNT/cam1/seg000.mp4" --config "$CONF"
check "... its cached blocks are dropped" test ! -e "$(cache_block "$OBJ0" 0)"
check_not "... it is local again" is_archived "$(stat -c %s "$MNT/cam1/seg000.mp4")"
check "... and byte-identical" bash -c "cd '$MNT' && grep seg000 '$T/sums' | sha256sum -c --quiet"
"$NVRCTL" archive now --config "$CONF" >/dev/null 2>&1
check "... its object is deleted, and the deletion audited" \
    deleted_from_archive "$OBJ0" seg000
OBJ1=$(object_of nvr/site1 "$(stat -c %s "$MNT/cam1/seg001.mp4")")
printf 'appended' >> "$MNT/cam1/seg001.mp4"; rc=$?
check "a write to an archived file succeeds (the file is recalled first)" test $rc -eq 0
check "... its old bytes are intact and the append follows them" \
    bash -c "[ \"\$(head -c \$((\$(stat -c %s '$MNT/cam1/seg001.mp4') - 8)) '$MNT/cam1/seg001.mp4' | sha256sum | cut -d' ' -f1)\" = \"\$(grep seg001 '$T/sums' | cut -d' ' -f1)\" ] && [ \"\$(tail -c 8 '$MNT/cam1/seg001.mp4')\" = appended ]"
check "... the recall is audited" bash -c "'$NVRCTL' log show --config '$CONF' --event recall | grep -q seg001"
stop_daemon

# -- radosgw killed during an upload --------------------------------------------
archive_config nvr/site1 "archive_after = 1d" "archive_max_rate = 8M"
start_daemon
head -c 30000000 /dev/urandom > "$MNT/cam2/slow.bin"; touch -d '3 days ago' "$MNT/cam2/slow.bin"
slow=$(sha256sum < "$MNT/cam2/slow.bin")
n0=$(alerts_of ArchiveUnreachable)
"$NVRCTL" archive now --no-wait --config "$CONF" >/dev/null
sleep 1.5  # of the ~4 s the upload takes at 8 MB/s
bash "$CEPH_CTL" rgw-stop "$CEPH_DIR"
check_not "... (radosgw is down)" curl -s -o /dev/null "$ENDPOINT"
drop_caches
check "radosgw killed mid-upload: the file still reads, byte-identical" bash -c "[ \"\$(sha256sum < '$MNT/cam2/slow.bin')\" = '$slow' ]"
unreachable_raised() { [ "$(alerts_of ArchiveUnreachable)" -gt "$n0" ]; }
wait_for 20 unreachable_raised
check "... ArchiveUnreachable is raised" unreachable_raised
check "... recording goes on meanwhile" \
    bash -c "head -c 2000000 /dev/urandom > '$MNT/cam2/during.bin' && [ \$(stat -c %s '$MNT/cam2/during.bin') = 2000000 ]"
bash "$CEPH_CTL" rgw-start "$CEPH_DIR"
"$NVRCTL" archive now --config "$CONF" > "$T/now.out" 2>&1; rc=$?
check "... after it returns the move completes (exit $rc)" test $rc -eq 0
check "... and the file is archived" is_archived 30000000
drop_caches
check "... and reads byte-identical" bash -c "[ \"\$(sha256sum < '$MNT/cam2/slow.bin')\" = '$slow' ]"
check "... ArchiveReachable said when it came back" has_alert ArchiveReachable
stop_daemon

# -- a recording appended to while its upload is read back -------------------------
# The read-back once asked for the file as it was by then, longer than the
# object: "the object is shorter", taken for an unreachable store
# (ArchiveUnreachable, backoff) while it answered every request.
archive_config nvr/site1 "archive_after = 1d" "archive_max_rate = 4M"
start_daemon
head -c 20000000 /dev/urandom > "$MNT/cam2/grow.bin"; touch -d '3 days ago' "$MNT/cam2/grow.bin"
OBJG=$(object_of nvr/site1 20000000)
u0=$(alerts_of ArchiveUnreachable)
"$NVRCTL" archive now --no-wait --config "$CONF" >/dev/null
# The object is complete; reading it back takes ~5 s at 4 MB/s.
wait_for 30 object_there "$OBJG"
head -c 100000 /dev/urandom >> "$MNT/cam2/grow.bin"; gsum=$(sha256sum < "$MNT/cam2/grow.bin")
"$NVRCTL" archive now --config "$CONF" >/dev/null 2>&1
"$NVRCTL" archive now --config "$CONF" >/dev/null 2>&1
check "appended to while it was uploaded: no ArchiveUnreachable" test "$(alerts_of ArchiveUnreachable)" -eq "$u0"
check_not "... the file stays local" is_archived 20100000
check "... the object of what was uploaded is deleted (audited)" \
    deleted_from_archive "$OBJG" grow.bin
drop_caches
check "... and the file reads back with the append" bash -c "[ \"\$(sha256sum < '$MNT/cam2/grow.bin')\" = '$gsum' ]"
[ -n "${T38_HOLD:-}" ] && sleep "$T38_HOLD"
stop_daemon
finish
