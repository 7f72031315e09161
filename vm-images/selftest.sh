#!/usr/bin/env bash
# Checks run-guest.sh and a back end together with real guests, one QEMU at a
# time: I/O round trip with host-side verification, a reboot, read-only export,
# multiple queues, exit-status pass-through and the timeout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_name=selftest
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() {
	cat <<EOF
usage: $(basename "$0") [--backend qsd | --daemon PATH] [--only NAME]...

Runs each case through run-guest.sh against the back end (default: --backend
qsd, qemu-storage-daemon) and checks the disk image from the host afterwards.
Cases: io reboot read-only multi-queue exit-status timeout.
Exits 0 when every case passed.
EOF
}

backend=(--backend qsd)
only=()
while [ $# -gt 0 ]; do
	case "$1" in
	--backend)
		[ "${2:-}" = qsd ] || die "only --backend qsd is known"
		backend=(--backend qsd)
		shift
		;;
	--daemon)
		[ -x "${2:-}" ] || die "--daemon needs an executable"
		backend=(--daemon "$2")
		shift
		;;
	--only)
		only+=("${2:?--only needs a case name}")
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
	shift
done

work=$(mktemp -d "${TMPDIR:-/tmp}/selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$here/build-guest.sh"

mib=1048576
passed=() failed=()

# guest EXPECTED_STATUS IMAGE_SIZE [run-guest args]: runs a guest on a fresh
# zeroed $work/disk.img; the logs land in $work and go with it.
guest() {
	local expected=$1 size=$2 status=0
	shift 2
	rm -f "$work/disk.img" "$work/daemon.log"
	truncate -s "$size" "$work/disk.img"
	"$here/run-guest.sh" "${backend[@]}" --image "$work/disk.img" --quiet \
		--serial-log "$work/serial.log" --daemon-log "$work/daemon.log" "$@" || status=$?
	if [ "$status" != "$expected" ]; then
		log "expected exit status $expected, got $status; console:"
		clean_console <"$work/serial.log" | sed 's/^/    /' >&2
		[ ! -s "$work/daemon.log" ] || { log "daemon log:"; sed 's/^/    /' "$work/daemon.log" >&2; }
		return 1
	fi
}

# image_has OFFSET FILE: the image holds FILE's bytes at OFFSET.
image_has() {
	cmp -s -i "$1:0" -n "$(stat -c %s "$2")" "$work/disk.img" "$2" ||
		{ log "the image does not hold $(basename "$2") at offset $1"; return 1; }
}

# image_zero OFFSET LENGTH: the image is zero over [OFFSET, OFFSET+LENGTH).
image_zero() {
	cmp -s -i "$1:0" -n "$2" "$work/disk.img" /dev/zero ||
		{ log "the image is not zero over $2 bytes at offset $1"; return 1; }
}

case_io() {
	head -c $((256 * 1024)) /dev/urandom >"$work/pattern.bin"
	guest 0 32M --workload "$here/workloads/io-roundtrip.sh" \
		--add-file "$work/pattern.bin:/pattern.bin" &&
		image_has $mib "$work/pattern.bin" &&
		image_has $((3 * mib + 512)) "$work/pattern.bin" &&
		image_zero $((8 * mib)) $((256 * 1024))
}

case_reboot() {
	printf 'second-boot-done' >"$work/mark"
	guest 0 8M --allow-reboot --workload "$here/workloads/reboot-marker.sh" &&
		image_has 0 "$work/mark" || return 1
	local boots
	boots=$(grep -a -c GUEST-BOOTED "$work/serial.log" || true)
	[ "$boots" = 2 ] || { log "the guest booted $boots times, not 2"; return 1; }
}

# The guest commands below are single-quoted on purpose: the guest expands them.
# shellcheck disable=SC2016
case_read_only() {
	guest 0 8M --read-only --command '
		[ "$(blktool getro "$GUEST_DISK")" = 1 ] || { echo "GUEST-NOTE: not read-only"; exit 1; }
		blktool pread "$GUEST_DISK" 0 4096 /tmp/block || exit 1
		head -c 4096 /dev/zero > /tmp/zeroes
		if blktool pwrite "$GUEST_DISK" 0 /tmp/zeroes; then
			echo "GUEST-NOTE: a write to the read-only disk succeeded"; exit 1
		fi' && image_zero 0 $((8 * mib))
}

# shellcheck disable=SC2016
case_multi_queue() {
	head -c 65536 /dev/urandom >"$work/small.bin"
	guest 0 8M --num-queues 2 --smp 2 --add-file "$work/small.bin:/small.bin" --command '
		set -e
		set -- /sys/block/vda/mq/*
		[ $# = 2 ] || { echo "GUEST-NOTE: $# queues, not 2"; exit 1; }
		blktool pwrite "$GUEST_DISK" 4096 /small.bin
		blktool pread "$GUEST_DISK" 4096 65536 /tmp/back
		cmp /small.bin /tmp/back' &&
		image_has 4096 "$work/small.bin"
}

case_exit_status() {
	guest 3 8M --command 'echo "GUEST-NOTE: exiting with 3"; exit 3'
}

case_timeout() {
	guest 124 8M --timeout 8 --command 'sleep 600'
}

cases=(io reboot read-only multi-queue exit-status timeout)
[ ${#only[@]} -eq 0 ] || cases=("${only[@]}")
for name in "${cases[@]}"; do
	declare -F "case_${name//-/_}" >/dev/null || die "no case '$name'"
	started=$(now_us)
	if "case_${name//-/_}"; then
		passed+=("$name")
		log "PASS $name ($(format_us $(($(now_us) - started))) s)"
	else
		failed+=("$name")
		log "FAIL $name"
	fi
done
log "${#passed[@]} passed, ${#failed[@]} failed${failed[*]:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
