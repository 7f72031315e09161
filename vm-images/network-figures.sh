#!/usr/bin/env bash
# Our daemon against qemu-storage-daemon on the same NBD server or RBD image: each serves it as
# vhost-user-blk in turn, the bench front end drives it (4 KiB random reads and writes at QD1
# and QD32, one queue), repeated alternately; prints every run's IOPS, the medians and the
# ratios. Then the concurrency figure: nbdkit's delay filter at 1 ms per request, QD32.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_name=network-figures
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() {
	cat <<EOF
usage: $(basename "$0") --daemon PATH --bench PATH [--repetitions N] [--runtime SECONDS]
           [--server nbdkit|qemu-nbd|rbd] [--delay-ms MS]

Starts an NBD server on a Unix socket (nbdkit's memory plugin, 256 MiB, by default; or
qemu-nbd on a 256 MiB file in /var/tmp), or a throwaway Ceph cluster with a 256 MiB RBD
image (rbd: vm-images/ceph-cluster.sh, memstore), fills the span the runs touch, then
serves it with PATH (--blk-nbd / --blk-rbd) and with qemu-storage-daemon (--blockdev
driver=nbd / driver=rbd) alternately,
--repetitions times each (default 3) of --runtime seconds (default 5) per workload.
--delay-ms puts nbdkit behind its delay filter (reads and writes answered MS later: a server
across a network) for every workload.
EOF
}

daemon="" bench="" repetitions=3 runtime=5 server=nbdkit delay=""
while [ $# -gt 0 ]; do
	case "$1" in
	--daemon) daemon=$2; shift 2 ;;
	--bench) bench=$2; shift 2 ;;
	--repetitions) repetitions=$2; shift 2 ;;
	--runtime) runtime=$2; shift 2 ;;
	--server) server=$2; shift 2 ;;
	--delay-ms) delay=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[ -x "$daemon" ] && [ -x "$bench" ] || { usage >&2; exit 2; }
[ -z "$delay" ] || [ "$server" = nbdkit ] || die "--delay-ms needs --server nbdkit"
command -v qemu-storage-daemon >/dev/null || die "qemu-storage-daemon is not installed (make setup)"

work=$(mktemp -d "/var/tmp/network-figures.XXXXXX")
server_pid="" backend_pid=""
cleanup() {
	[ -z "$backend_pid" ] || kill "$backend_pid" 2>/dev/null || true
	[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	[ "$server" != rbd ] || "$here/ceph-cluster.sh" stop "$work/ceph"
	rm -rf "$work"
}
trap cleanup EXIT
nbd_socket="$work/nbd.sock"
span=64m

# start_server [--filter=NAME... [PARAMETER=VALUE...]]: an NBD server on $nbd_socket; filter
# options go before the plugin, their parameters after it.
start_server() {
	local filters=() plugin_parameters=()
	for argument in "$@"; do
		case "$argument" in
		--filter=*) filters+=("$argument") ;;
		*) plugin_parameters+=("$argument") ;;
		esac
	done
	[ -z "$server_pid" ] || { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
	rm -f "$nbd_socket"
	if [ "$server" = rbd ]; then
		ceph_conf=$("$here/ceph-cluster.sh" start "$work/ceph")
		rbd -c "$ceph_conf" create --size 256M rbd/bench
		return
	elif [ "$server" = qemu-nbd ]; then
		truncate -s 256M "$work/disk.img"
		qemu-nbd --persistent --shared=2 --format=raw --cache=writeback --socket="$nbd_socket" "$work/disk.img" &
	else
		nbdkit --foreground --unix "$nbd_socket" "${filters[@]}" memory size=256M "${plugin_parameters[@]}" &
	fi
	server_pid=$!
	local waited=0
	until [ -S "$nbd_socket" ]; do
		kill -0 "$server_pid" 2>/dev/null && [ "$waited" -lt 200 ] || die "the NBD server did not start listening"
		sleep 0.05
		waited=$((waited + 1))
	done
}

# start_backend ours|qsd: serves the export on $work/v.sock.
start_backend() {
	local socket="$work/v.sock" waited=0
	rm -f "$socket"
	if [ "$1" = ours ] && [ "$server" = rbd ]; then
		"$daemon" --socket-path="$socket" --blk-rbd=rbd/bench --ceph-conf="$ceph_conf" --log-level=error &
	elif [ "$1" = ours ]; then
		"$daemon" --socket-path="$socket" --blk-nbd="nbd+unix:///?socket=$nbd_socket" --log-level=error &
	elif [ "$server" = rbd ]; then
		qemu-storage-daemon --blockdev "driver=rbd,node-name=disk,pool=rbd,image=bench,conf=$ceph_conf" \
			--export "type=vhost-user-blk,id=export,node-name=disk,addr.type=unix,addr.path=$socket,writable=on" &
	else
		qemu-storage-daemon --blockdev "driver=nbd,node-name=disk,server.type=unix,server.path=$nbd_socket" \
			--export "type=vhost-user-blk,id=export,node-name=disk,addr.type=unix,addr.path=$socket,writable=on" &
	fi
	backend_pid=$!
	until [ -S "$socket" ]; do
		[ "$waited" -lt 200 ] || die "$1 did not create its socket"
		sleep 0.05
		waited=$((waited + 1))
	done
}

stop_backend() {
	kill "$backend_pid"
	wait "$backend_pid" 2>/dev/null || true
	backend_pid=""
}

# iops BACKEND BENCH-OPTIONS...: one run's IOPS.
iops() {
	local backend=$1 json
	shift
	start_backend "$backend"
	json=$("$bench" run --socket "$work/v.sock" --size "$span" --runtime "$runtime" --json --no-progress "$@")
	stop_backend
	sed -n 's/.*"iops" *: *\([0-9.]*\).*/\1/p' <<<"$json" | head -n 1
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

if [ -n "$delay" ]; then
	start_server --filter=delay "delay-read=${delay}ms" "delay-write=${delay}ms"
else
	start_server
fi
start_backend ours
"$bench" run --socket "$work/v.sock" --rw write --bs 1m --iodepth 4 --size "$span" --requests 64 --no-progress >/dev/null
stop_backend

printf '%-16s %12s %12s %7s   (server: %s%s, %s x %s s, medians)\n' workload ours qsd ratio "$server" \
	"${delay:+ behind a $delay ms delay}" "$repetitions" "$runtime"
for rw in randread randwrite; do
	for depth in 1 32; do
		: >"$work/ours" && : >"$work/qsd"
		for _ in $(seq 1 "$repetitions"); do
			iops ours --rw "$rw" --iodepth "$depth" >>"$work/ours"
			iops qsd --rw "$rw" --iodepth "$depth" >>"$work/qsd"
		done
		ours=$(median <"$work/ours")
		qsd=$(median <"$work/qsd")
		printf '%-16s %12.0f %12.0f %7.2f   (ours: %s; qsd: %s)\n' "$rw QD$depth" "$ours" "$qsd" \
			"$(awk -v a="$ours" -v b="$qsd" 'BEGIN { print a / b }')" \
			"$(tr '\n' ' ' <"$work/ours" | sed 's/ $//')" "$(tr '\n' ' ' <"$work/qsd" | sed 's/ $//')"
	done
done

if [ "$server" = nbdkit ] && [ -z "$delay" ]; then
	start_server --filter=delay delay-read=1ms
	for backend in ours qsd; do
		value=$(iops "$backend" --rw randread --iodepth 32)
		printf 'delay 1 ms, randread QD32: %-4s %8.0f IOPS = %5.1f requests per millisecond\n' "$backend" "$value" \
			"$(awk -v v="$value" 'BEGIN { print v / 1000 }')"
	done
fi
