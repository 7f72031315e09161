#!/usr/bin/env bash
# Where the CPU goes per NBD request: one run of the bench front end (4 KiB, one queue) against
# our daemon or qemu-storage-daemon on nbdkit's memory plugin, and the CPU time (utime + stime,
# /proc/PID/stat) the back end and nbdkit spent in it, per request.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_name=network-cpu
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() {
	cat <<EOF
usage: $(basename "$0") --daemon PATH --bench PATH [--backend ours|qsd] [--rw randread|randwrite]
           [--iodepth N] [--runtime SECONDS] [--delay-ms MS] [-- DAEMON-OPTION...]

Starts nbdkit's memory plugin (256 MiB; behind the delay filter with --delay-ms), serves it
with PATH (--blk-nbd, plus the options after --) or with qemu-storage-daemon (--backend qsd),
runs the bench front end for --runtime seconds (default 5) at --iodepth (default 32), and
prints IOPS and the microseconds of CPU per request of the back end and of nbdkit.
EOF
}

daemon="" bench="" backend=ours rw=randread depth=32 runtime=5 delay="" extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	--daemon) daemon=$2; shift 2 ;;
	--bench) bench=$2; shift 2 ;;
	--backend) backend=$2; shift 2 ;;
	--rw) rw=$2; shift 2 ;;
	--iodepth) depth=$2; shift 2 ;;
	--runtime) runtime=$2; shift 2 ;;
	--delay-ms) delay=$2; shift 2 ;;
	--) shift; extra=("$@"); break ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[ -x "$daemon" ] && [ -x "$bench" ] || { usage >&2; exit 2; }

work=$(mktemp -d "/var/tmp/network-cpu.XXXXXX")
server_pid="" backend_pid=""
cleanup() {
	[ -z "$backend_pid" ] || kill "$backend_pid" 2>/dev/null || true
	[ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

wait_for_socket() {
	local waited=0
	until [ -S "$1" ]; do
		kill -0 "$2" 2>/dev/null && [ "$waited" -lt 200 ] || die "$3 did not start listening"
		sleep 0.05
		waited=$((waited + 1))
	done
}

filters=() parameters=()
[ -z "$delay" ] || { filters=(--filter=delay); parameters=("delay-read=${delay}ms" "delay-write=${delay}ms"); }
nbdkit --foreground --unix "$work/nbd.sock" "${filters[@]}" memory size=256M "${parameters[@]}" &
server_pid=$!
wait_for_socket "$work/nbd.sock" "$server_pid" nbdkit
if [ "$backend" = ours ]; then
	"$daemon" --socket-path="$work/v.sock" --blk-nbd="nbd+unix:///?socket=$work/nbd.sock" --log-level=error "${extra[@]}" &
else
	qemu-storage-daemon --blockdev "driver=nbd,node-name=disk,server.type=unix,server.path=$work/nbd.sock" \
		--export "type=vhost-user-blk,id=export,node-name=disk,addr.type=unix,addr.path=$work/v.sock,writable=on" &
fi
backend_pid=$!
wait_for_socket "$work/v.sock" "$backend_pid" "$backend"
"$bench" run --socket "$work/v.sock" --rw write --bs 1m --iodepth 4 --size 64m --requests 64 --no-progress >/dev/null

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
backend_before=$(cpu_ticks "$backend_pid") server_before=$(cpu_ticks "$server_pid")
json=$("$bench" run --socket "$work/v.sock" --size 64m --runtime "$runtime" --json --no-progress --rw "$rw" --iodepth "$depth")
backend_ticks=$(($(cpu_ticks "$backend_pid") - backend_before)) server_ticks=$(($(cpu_ticks "$server_pid") - server_before))
iops=$(sed -n 's/.*"iops" *: *\([0-9.]*\).*/\1/p' <<<"$json" | head -n 1)
awk -v iops="$iops" -v runtime="$runtime" -v b="$backend_ticks" -v s="$server_ticks" -v hz="$(getconf CLK_TCK)" \
	-v what="$backend $rw QD$depth${delay:+ delay ${delay} ms}${extra[*]:+ ${extra[*]}}" 'BEGIN {
	requests = iops * runtime
	printf "%s: %.0f IOPS, CPU per request: back end %.1f us, nbdkit %.1f us\n", what, iops,
		b / hz * 1e6 / requests, s / hz * 1e6 / requests
}'
