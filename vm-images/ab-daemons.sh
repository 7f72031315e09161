#!/usr/bin/env bash
# A/B of two daemon builds on the request path alone: each serves the same disk (a null disk unless --disk) in turn, the
# bench front end drives it, repeated alternately; prints every run's IOPS, the medians and
# their ratio. For changes that must cost nothing (docs/migration.md: dirty logging off).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_name=ab-daemons
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() {
	cat <<EOF
usage: $(basename "$0") --daemon PATH --baseline PATH --bench PATH [--repetitions N]
           [--runtime SECONDS] [--disk DAEMON-OPTION]... [-- BENCH-RUN-OPTIONS...]

Starts PATH and the baseline alternately with the disk the DAEMON-OPTIONs name (default
--null-size=1g; e.g. --disk --blk-file=/tmp/ab.qcow2 --disk --format=qcow2), runs
'vhost-user-blk-bench run --json' against each (default: 4k random reads, QD32, one
queue), --repetitions times each (default 5) of --runtime seconds (default 5).
EOF
}

daemon="" baseline="" bench="" repetitions=5 runtime=5 disk=()
while [ $# -gt 0 ]; do
	case "$1" in
	--daemon) daemon=$2; shift 2 ;;
	--baseline) baseline=$2; shift 2 ;;
	--bench) bench=$2; shift 2 ;;
	--repetitions) repetitions=$2; shift 2 ;;
	--runtime) runtime=$2; shift 2 ;;
	--disk) disk+=("$2"); shift 2 ;;
	--) shift; break ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[ -x "$daemon" ] && [ -x "$baseline" ] && [ -x "$bench" ] || { usage >&2; exit 2; }
extra=("$@")
[ ${#disk[@]} -gt 0 ] || disk=(--null-size=1g)

work=$(mktemp -d "${TMPDIR:-/tmp}/ab-daemons.XXXXXX")
daemon_pid=""
trap '[ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null; rm -rf "$work"' EXIT

# run_one BINARY: IOPS of one run against BINARY.
run_one() {
	local socket="$work/s.sock" waited=0 json
	rm -f "$socket"
	"$1" --socket-path="$socket" "${disk[@]}" >"$work/daemon.log" 2>&1 &
	daemon_pid=$!
	until [ -S "$socket" ]; do
		[ "$waited" -lt 200 ] || die "$1 did not create its socket"
		sleep 0.05
		waited=$((waited + 1))
	done
	json=$("$bench" run --socket "$socket" --runtime "$runtime" --json --no-progress "${extra[@]}")
	kill "$daemon_pid"
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=""
	sed -n 's/.*"iops" *: *\([0-9.]*\).*/\1/p' <<<"$json" | head -n 1
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$work/a" && : >"$work/b"
for repetition in $(seq 1 "$repetitions"); do
	a=$(run_one "$daemon")
	b=$(run_one "$baseline")
	printf 'run %d: daemon %s IOPS, baseline %s IOPS\n' "$repetition" "$a" "$b"
	echo "$a" >>"$work/a"
	echo "$b" >>"$work/b"
done
a=$(median <"$work/a")
b=$(median <"$work/b")
printf 'median: daemon %s IOPS, baseline %s IOPS, ratio %s\n' "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')"
