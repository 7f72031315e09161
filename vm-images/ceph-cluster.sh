#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for tests and benchmarks: one monitor, one manager and
# one OSD (memstore: objects in RAM) on 127.0.0.1, cephx on, everything under one directory.
#   ceph-cluster.sh start DIR   prints the conf path once pool "rbd" is ready
#   ceph-cluster.sh stop DIR    stops the daemons (OSD first) and removes DIR
# Settings and timings: shared notes for this machine kind, and docs/network-storage.md.
set -euo pipefail

command=${1:-} dir=${2:-}
[ -n "$command" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

stop() {
	[ -d "$dir/run" ] || { rm -rf "$dir"; return 0; }
	for name in osd.0 mgr.x mon.a; do
		[ -f "$dir/run/$name.pid" ] || continue
		pid=$(cat "$dir/run/$name.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo gone)
			[ "$state" = gone ] || [ "$state" = Z ] && break
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null || true
	done
	rm -rf "$dir"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start() {
	mkdir -p "$dir/run" "$dir/mon.a" "$dir/osd.0" "$dir/mgr.x" "$dir/log"
	local fsid v1 v2 conf="$dir/ceph.conf" keyring="$dir/keyring"
	fsid=$(cat /proc/sys/kernel/random/uuid)
	v1=$(free_port)
	v2=$(free_port)
	cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 1
paxos propose interval = 0.05
paxos min wait = 0.01
osd fast shutdown notify mon = false
client mount timeout = 10
rados mon op timeout = 10
[mon]
mon data = $dir/mon.\$id
[mgr]
mgr data = $dir/mgr.\$id
[osd]
osd data = $dir/osd.\$id
osd objectstore = memstore
memstore device bytes = 2147483648
EOF
	ceph-authtool --create-keyring "$keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	ceph-authtool "$keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
	ceph-authtool "$keyring" --gen-key -n mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *' >/dev/null
	monmaptool --create --enable-all-features --set-min-mon-release 16 --fsid "$fsid" \
		--addv a "[v2:127.0.0.1:$v2,v1:127.0.0.1:$v1]" "$dir/monmap" >/dev/null
	ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" --keyring "$keyring"
	# The daemons fork into the background: none may keep the caller's stdout or stderr open.
	ceph-mon -c "$conf" -i a </dev/null >/dev/null 2>&1
	local uuid osd_key
	uuid=$(cat /proc/sys/kernel/random/uuid)
	osd_key=$(ceph-authtool --gen-print-key)
	echo "{\"cephx_secret\": \"$osd_key\"}" >"$dir/osd.json"
	ceph -c "$conf" osd new "$uuid" -i "$dir/osd.json" >/dev/null
	ceph-authtool "$dir/osd.0/keyring" --create-keyring --name osd.0 --add-key "$osd_key" >/dev/null
	ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" --keyring "$dir/osd.0/keyring" >/dev/null 2>&1
	ceph-osd -c "$conf" -i 0 --keyring "$dir/osd.0/keyring" </dev/null >/dev/null 2>&1
	ceph-mgr -c "$conf" -i x --keyring "$keyring" </dev/null >/dev/null 2>&1 || true
	ceph -c "$conf" osd pool create rbd 8 8 replicated >/dev/null 2>&1
	rbd -c "$conf" pool init rbd
	echo "$conf"
}

case "$command" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
