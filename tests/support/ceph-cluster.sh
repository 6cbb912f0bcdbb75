#!/usr/bin/env bash
# A throw-away single-node Ceph cluster for the archive tests and bench:
# one ceph-mon, one ceph-osd on the in-memory memstore, one radosgw (S3 on
# 127.0.0.1), all bound to 127.0.0.1, cephx on.
# No ceph-mgr: nothing here needs it.
#
#   ceph-cluster.sh start DIR   prints "endpoint access secret"; PIDs in DIR/pids
#   ceph-cluster.sh stop DIR    SIGKILLs what start left running
#   ceph-cluster.sh rgw-start DIR / rgw-stop DIR   radosgw alone (outage tests)
#
# Ports: CEPH_MON_PORT (default 16789), CEPH_RGW_PORT (default 17480), or the
# next free one above each. Both lie below the kernel's ephemeral range
# (32768-60999): a port inside it can be taken at any moment as the source
# port of an outgoing connection (CI saw radosgw fail with "Address already in
# use" on 37480 while the OSD and monitor were connecting).
# CEPH_MEMSTORE_BYTES: the OSD's in-memory capacity (default 2 GiB); a full
# OSD blocks writes rather than failing them.
set -euo pipefail
cmd=${1:?start|stop|rgw-start|rgw-stop}
D=${2:?directory}
ACCESS=NVRFSTESTACCESSKEY01
SECRET=nvrfs-test-secret-key-0123456789abcdefghij
C=$D/ceph.conf

wait_for() {  # SECONDS command...
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}

# free_port FROM: the first port from FROM up that nothing on 127.0.0.1 listens on.
free_port() {
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
        p=$((p + 1)); [ "$p" -lt $(($1 + 100)) ] || { echo "no free port in $1..$p" >&2; return 1; }
    done
    echo "$p"
}

start_rgw() {
    local RGW_PORT; RGW_PORT=$(cat "$D/rgw.port")
    # -f: in the foreground, so $! is radosgw itself (rgw-stop kills it).
    radosgw -f -c "$C" -n client.rgw.a --keyring "$D/keyring" >> "$D/rgw.log" 2>&1 &
    echo $! > "$D/rgw.pid"
    wait_for 60 curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" ||
        { echo "radosgw did not answer on 127.0.0.1:$RGW_PORT" >&2; tail -20 "$D/rgw.log" >&2; return 1; }
}

case $cmd in
start)
    mkdir -p "$D/mon.a" "$D/osd.0" "$D/run"
    MON_PORT=${CEPH_MON_PORT:-$(free_port 16789)}
    RGW_PORT=${CEPH_RGW_PORT:-$(free_port 17480)}
    echo "$RGW_PORT" > "$D/rgw.port"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    cat > "$C" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
ms mon client mode = crc secure
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/\$name.log
pid file = $D/run/\$name.pid
keyring = $D/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
paxos propose interval = 0.01
mon osd min up ratio = 0
mon data avail crit = 0
mon data avail warn = 0
[mon.a]
mon data = $D/mon.a
[osd.0]
osd data = $D/osd.0
osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-2147483648}
osd max object size = 1073741824
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw dns name = 127.0.0.1
rgw data = $D/rgw
EOF
    K=$D/keyring
    ceph-authtool --create-keyring "$K" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$K" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool "$K" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' >/dev/null
    ceph-authtool "$K" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' >/dev/null
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap" >/dev/null
    ceph-mon -c "$C" --mkfs -i a --monmap "$D/monmap" --keyring "$K"
    ceph-mon -c "$C" -i a
    echo "$(cat "$D/run/mon.a.pid" 2>/dev/null || pgrep -f "ceph-mon -c $C" | head -1)" > "$D/mon.pid"
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    wait_for 30 ceph -c "$C" --connect-timeout 5 osd new "$osd_uuid" 0
    ceph-osd -c "$C" -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
    ceph-osd -c "$C" -i 0
    wait_for 30 test -s "$D/run/osd.0.pid"
    cp "$D/run/osd.0.pid" "$D/osd.pid"
    wait_for 60 bash -c "ceph -c '$C' osd stat -f json | grep -q '\"num_up_osds\":1'" ||
        { echo "the OSD did not come up" >&2; exit 1; }
    start_rgw
    radosgw-admin -c "$C" user create --uid=nvr --display-name=nvr --access-key=$ACCESS --secret=$SECRET >/dev/null
    echo "http://127.0.0.1:$RGW_PORT $ACCESS $SECRET"
    ;;
rgw-start) start_rgw ;;
rgw-stop)
    kill -9 "$(cat "$D/rgw.pid")" 2>/dev/null || true
    wait_for 10 bash -c "! kill -0 $(cat "$D/rgw.pid") 2>/dev/null" || true
    ;;
stop)
    for p in rgw osd mon; do [ -s "$D/$p.pid" ] && kill -9 "$(cat "$D/$p.pid")" 2>/dev/null || true; done
    pkill -9 -f -- "-c $C" 2>/dev/null || true
    ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
