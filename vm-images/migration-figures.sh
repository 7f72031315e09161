#!/usr/bin/env bash
# Live-migration figures (docs/migration.md): a guest whose disk the daemon serves is moved
# between two QEMUs on this host with run-guest.sh --migrate, idle and under disk load; QMP
# query-migrate's total-time and downtime of every migration, and their medians per case.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_name=migration-figures
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() {
	cat <<EOF
usage: $(basename "$0") --daemon PATH [--qemu NAME] [--migrations N] [--runs N]

Runs each case --runs times (default 3), each run moving the guest --migrations times
(default 4; back and forth), and prints every migration's figures and the medians:
  nodisk the same guest without the vhost-user disk, idle (QEMU alone: the baseline)
  idle   the guest only polls the disk's first block every 0.2 s
  load   vm-images/workloads/migration-writer.sh: two writers and a reader, without pause
Guest: 2 vCPUs, 512M of RAM, QEMU's default device properties, the daemon's defaults.
EOF
}

daemon="" qemu=debian13-backports migrations=4 runs=3
while [ $# -gt 0 ]; do
	case "$1" in
	--daemon) daemon=$2; shift 2 ;;
	--qemu) qemu=$2; shift 2 ;;
	--migrations) migrations=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[ -x "$daemon" ] || { usage >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/migration-figures.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/data"
head -c 1048576 /dev/urandom >"$work/data/pattern"
echo 2 >"$work/data/writers"
# Long enough for the migrations, which cannot tell a guest without a disk to stop.
cat >"$work/nodisk.sh" <<EOF
echo "GUEST-MIGRATE-READY"
sleep $((migrations * 3 + 5))
EOF
cat >"$work/idle.sh" <<'EOF'
echo "GUEST-MIGRATE-READY"
while [ "$(blktool getmark "$GUEST_DISK" 0)" != stop ]; do sleep 0.2; done
EOF

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-6s %-4s %-9s %-10s %s\n' case run migration status "total-time(ms) downtime(ms)"
for case in nodisk idle load; do
	workload=$here/workloads/migration-writer.sh
	[ "$case" = load ] || workload=$work/$case.sh
	disk=(--daemon "$daemon" --image "$work/disk.img")
	[ "$case" != nodisk ] || disk=(--no-disk)
	: >"$work/$case.figures"
	for run in $(seq 1 "$runs"); do
		rm -f "$work/disk.img"
		truncate -s 64M "$work/disk.img"
		output=$("$here/run-guest.sh" --qemu "$qemu" "${disk[@]}" --smp 2 \
			--memory 512M --workload "$workload" --add-file "$work/data:/data" --migrate "$migrations" \
			--after-migrations "printf stop | dd of='$work/disk.img' bs=512 conv=notrunc status=none" \
			--quiet --timeout 300 2>&1) || log "run $run of $case exited with $?"
		while read -r number status total downtime; do
			printf '%-6s %-4s %-9s %-10s %s %s\n' "$case" "$run" "$number" "$status" "$total" "$downtime"
			[ "$status" != completed ] || echo "$total $downtime" >>"$work/$case.figures"
		done < <(sed -n 's/^run-guest: migration \([0-9]*\): status=\([a-z]*\) total-time=\([0-9]*\)ms downtime=\([0-9]*\)ms.*/\1 \2 \3 \4/p' <<<"$output")
	done
done
echo
printf '%-6s %-11s %-22s %s\n' case migrations "median total-time (ms)" "median downtime (ms)"
for case in nodisk idle load; do
	printf '%-6s %-11s %-22s %s\n' "$case" "$(wc -l <"$work/$case.figures")" \
		"$(cut -d' ' -f1 "$work/$case.figures" | median)" "$(cut -d' ' -f2 "$work/$case.figures" | median)"
done
