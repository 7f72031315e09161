# Guest workload (busybox sh) for live migration (run-guest.sh --migrate): writes and
# verifies data on the disk without pause while the host moves the guest between QEMUs,
# until the host sets the mark "stop" in the disk's first 512 bytes (blktool setmark's
# format: the text, NUL-padded), for example through
#   --after-migrations "printf stop | dd of=IMAGE bs=512 conv=notrunc status=none"
# Needs /data/pattern (1 MiB) added with --add-file HOST_DIR:/data. Optional /data/writers:
# how many writers run at once (default 1), writer N pinned to CPU N modulo the CPUs.
#
# Each writer owns 16 slots of 64 KiB from 1 MiB on (writer W, slot S at
# 1 MiB + (W * 16 + S) * 64 KiB). A round writes a slot with a piece of the pattern chosen
# by the round number, reads it back (O_DIRECT), and reads back another slot written earlier
# (perhaps under another QEMU) through the page cache, comparing md5 sums the guest keeps in
# RAM. At the end every slot is
# checked once more and printed as "GUEST-NOTE: slot OFFSET MD5" for the host to compare
# with the image.
set -e
dev=${GUEST_DISK:?no virtio-blk disk}
note() { echo "GUEST-NOTE: $*"; }
writers=1
[ ! -f /data/writers ] || writers=$(cat /data/writers)
cpus=$(grep -c ^processor /proc/cpuinfo)
slots=16
slot_bytes=65536
base=1048576

slot_offset() { echo $((base + ($1 * slots + $2) * slot_bytes)); }

# verify WRITER SLOT: the slot reads back as its recorded sum, through the guest's page
# cache after dropping it: the pages are filled by the device alone (no CPU write the
# migration would track), so one the dirty log missed at a switch-over shows here.
verify() {
	sum_file=/tmp/sum-$1-$2
	[ -f "$sum_file" ] || return 0
	echo 1 >/proc/sys/vm/drop_caches
	actual=$(dd if="$dev" bs="$slot_bytes" skip=$(($(slot_offset "$1" "$2") / slot_bytes)) count=1 2>/dev/null |
		md5sum | cut -d' ' -f1)
	if [ "$actual" != "$(cat "$sum_file")" ]; then
		echo "GUEST-NOTE: MISMATCH writer $1 slot $2: $actual, wrote $(cat "$sum_file")"
		return 1
	fi
}

writer() {
	w=$1 round=0
	while [ "$(blktool getmark "$dev" 0)" != stop ]; do
		round=$((round + 1))
		slot=$((round % slots))
		dd if=/data/pattern of="/tmp/chunk-$w" bs=4096 skip=$(((round * 7 + w * 3) % 240)) count=16 2>/dev/null
		blktool pwrite "$dev" "$(slot_offset "$w" "$slot")" "/tmp/chunk-$w"
		blktool pread "$dev" "$(slot_offset "$w" "$slot")" "$slot_bytes" "/tmp/back-$w"
		cmp "/tmp/chunk-$w" "/tmp/back-$w"
		md5sum <"/tmp/chunk-$w" | cut -d' ' -f1 >"/tmp/sum-$w-$slot"
		verify "$w" $(((slot + slots / 2) % slots))
		[ "$round" != 2 ] || [ "$w" != 0 ] || echo "GUEST-MIGRATE-READY"
	done
	echo "$round" >"/tmp/rounds-$w"
}

# The reader: the pattern at 16 MiB, read again and again with O_DIRECT through one buffer
# that only the device writes (blktool verify). At a switch-over the read in flight
# completes on the source: if the dirty log missed it, the destination's copy of that
# buffer holds an older piece and the comparison fails.
reader() {
	passes=0
	while [ "$(blktool getmark "$dev" 0)" != stop ]; do
		if ! blktool verify "$dev" 16777216 /data/pattern 4; then
			echo "GUEST-NOTE: MISMATCH reader after $passes passes"
			return 1
		fi
		passes=$((passes + 4))
	done
	echo "$passes" >/tmp/reads
}

blktool pwrite "$dev" 16777216 /data/pattern
reader &
pids="$!"
w=0
while [ "$w" -lt "$writers" ]; do
	writer "$w" &
	pids="$pids $!"
	taskset -p $((1 << (w % cpus))) $! >/dev/null
	w=$((w + 1))
done
status=0
for pid in $pids; do wait "$pid" || status=1; done
[ "$status" = 0 ] || exit 1

note "reader: $(cat /tmp/reads) passes"
w=0
while [ "$w" -lt "$writers" ]; do
	note "writer $w: $(cat "/tmp/rounds-$w") rounds"
	s=0
	while [ "$s" -lt "$slots" ]; do
		verify "$w" "$s"
		[ ! -f "/tmp/sum-$w-$s" ] || note "slot $(slot_offset "$w" "$s") $(cat "/tmp/sum-$w-$s")"
		s=$((s + 1))
	done
	w=$((w + 1))
done
note "migration writer verified"
