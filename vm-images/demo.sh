#!/usr/bin/env bash
# The demo: build the daemon and the guest, attach a fresh 64 MiB image to a
# guest through the daemon, write and read a known pattern there with O_DIRECT,
# and check the image from the host afterwards.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
log_name=demo
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() {
	cat <<EOF
usage: $(basename "$0") [--backend qsd | --daemon PATH] [--timeout SECONDS]

Builds vhost-user-blk (static release build) and the test guest, creates a
temporary 64 MiB image, boots a guest attached to it through the daemon,
writes a known pattern at a few offsets with O_DIRECT, reads it back,
compares, prints md5sums and the disk size, flushes, then checks from the
host that the image holds exactly the pattern. Exits non-zero on any failure.

  --backend qsd    serve the image with qemu-storage-daemon instead of our
                   daemon (no Swift build)
  --daemon PATH    use this vhost-user-blk binary instead of building one
  --timeout S      guest time limit (default 120)
EOF
}

backend=() backend_name="" timeout=120
while [ $# -gt 0 ]; do
	case "$1" in
	--backend)
		[ "${2:-}" = qsd ] || die "only --backend qsd is known"
		backend=(--backend qsd) backend_name="qemu-storage-daemon"
		shift
		;;
	--daemon)
		[ -x "${2:-}" ] || die "--daemon needs an executable"
		backend=(--daemon "$2") backend_name=$2
		shift
		;;
	--timeout)
		timeout=${2:?--timeout needs seconds}
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

demo_started=$(now_us)
if [ ${#backend[@]} -eq 0 ]; then
	command -v swift >/dev/null || die "swift is not on PATH; install Swift or use --backend qsd"
	log "building vhost-user-blk (swift build -c release --static-swift-stdlib)"
	(cd "$repo" && swift build -c release --static-swift-stdlib --product vhost-user-blk) >&2 ||
		die "swift build failed"
	daemon="$(cd "$repo" && swift build -c release --static-swift-stdlib --show-bin-path)/vhost-user-blk"
	[ -x "$daemon" ] || die "the build left no $daemon"
	backend=(--daemon "$daemon") backend_name=$daemon
fi
"$here/build-guest.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/demo.XXXXXX")
# Keep the image and the logs when something failed.
# shellcheck disable=SC2317 # reached through the EXIT trap
finish() {
	if [ $? = 0 ]; then
		rm -rf "$work"
	else
		log "kept the image, the workload and the logs in $work"
	fi
}
trap finish EXIT
disk_size=$((64 * 1024 * 1024))

# name, offset, length: a page-aligned start, a region that is sector- but not
# page-aligned, a 1 MiB region in the middle and the last 128 KiB of the disk.
regions=(
	"start 0 65536"
	"unaligned $((1024 * 1024 + 512)) 4608"
	"middle $((33 * 1024 * 1024)) $((1024 * 1024))"
	"end $((disk_size - 128 * 1024)) $((128 * 1024))"
)

# Each 512-byte sector of a pattern names its region and its own offset, so a
# sector found at the wrong place in the image is recognisable.
make_pattern() {
	awk -v name="$1" -v offset="$2" -v sectors=$(($3 / 512)) 'BEGIN {
		dots = "."; while (length(dots) < 511) dots = dots dots
		for (s = 0; s < sectors; s++) {
			line = sprintf("vhost-user-blk demo: region %s, sector %d, disk byte %d ",
				name, s, offset + s * 512)
			printf "%s%s\n", line, substr(dots, 1, 511 - length(line))
		}
	}'
}

mkdir -p "$work/demo"
truncate -s "$disk_size" "$work/disk.img" "$work/expected.img"
cat >"$work/workload.sh" <<'EOF'
set -e
dev=${GUEST_DISK:?no virtio-blk disk}
note() { echo "GUEST-NOTE: $*"; }
note "disk $dev, size $(blktool size "$dev") bytes"
EOF
for region in "${regions[@]}"; do
	read -r name offset length <<<"$region"
	make_pattern "$name" "$offset" "$length" >"$work/demo/$name.bin"
	dd if="$work/demo/$name.bin" of="$work/expected.img" bs=512 seek=$((offset / 512)) \
		conv=notrunc status=none
	cat >>"$work/workload.sh" <<EOF
blktool pwrite "\$dev" $offset /demo/$name.bin
blktool pread "\$dev" $offset $length /tmp/$name.back
cmp /demo/$name.bin /tmp/$name.back
note "region $name offset $offset length $length md5 \$(md5sum </tmp/$name.back | cut -d' ' -f1)"
EOF
done
cat >>"$work/workload.sh" <<'EOF'
blktool flush "$dev"
note "flush done; every region read back equal"
EOF

log "booting the guest against $backend_name"
status=0
"$here/run-guest.sh" "${backend[@]}" --image "$work/disk.img" --timeout "$timeout" \
	--workload "$work/workload.sh" --add-file "$work/demo:/demo" \
	--serial-log "$work/serial.log" --daemon-log "$work/daemon.log" || status=$?
if [ "$status" = 201 ] && [ "$backend_name" != qemu-storage-daemon ]; then
	log "the daemon never served its socket; if it is not implemented yet," \
		"'$(basename "$0") --backend qsd' runs the same demo with qemu-storage-daemon"
fi
[ "$status" = 0 ] || die "the guest run failed with status $status"

# From the host: every region, and the whole image against the expected one.
console=$(tr -d '\000' <"$work/serial.log" | clean_console)
guest_size=$(sed -n 's/.*GUEST-NOTE: disk .*, size \([0-9]*\) bytes.*/\1/p' <<<"$console" | tail -n 1)
echo
echo "demo summary"
echo "  back end:  $backend_name"
echo "  disk:      64 MiB temporary image; the guest saw ${guest_size:-an unknown number of} bytes"
[ "$guest_size" = "$disk_size" ] || die "the guest did not see a $disk_size-byte disk"
printf '  %-10s %10s %8s  %-32s  %s\n' region offset length "md5 in the guest" "host image"
failed=0
for region in "${regions[@]}"; do
	read -r name offset length <<<"$region"
	guest_md5=$(grep -a -o "region $name offset $offset length $length md5 [0-9a-f]*" <<<"$console" |
		awk '{ print $NF }' || true)
	host_md5=$(dd if="$work/disk.img" bs=512 skip=$((offset / 512)) count=$((length / 512)) status=none |
		md5sum | cut -d' ' -f1)
	want_md5=$(md5sum <"$work/demo/$name.bin" | cut -d' ' -f1)
	verdict=ok
	if [ "$host_md5" != "$want_md5" ] || [ "$guest_md5" != "$want_md5" ]; then
		verdict="MISMATCH (pattern md5 $want_md5, host $host_md5)"
		failed=1
	fi
	printf '  %-10s %10s %8s  %-32s  %s\n' "$name" "$offset" "$length" "${guest_md5:-none}" "$verdict"
done
if cmp -s "$work/disk.img" "$work/expected.img"; then
	echo "  image:     equal byte for byte to the expected image (patterns, zeroes elsewhere)"
else
	echo "  image:     DIFFERS from the expected image: $(cmp "$work/disk.img" "$work/expected.img" 2>&1 | head -n 1)"
	failed=1
fi
echo "  time:      $(format_us $(($(now_us) - demo_started))) s in all"
[ "$failed" = 0 ] || die "FAIL"
echo "demo: PASS"
