# Guest workload (busybox sh): data and requests across the vhost-user-blk disk.
# Needs /pattern.bin (a multiple of 512 bytes, at most 1 MiB) added with
#   --add-file HOST_FILE:/pattern.bin
# Disk layout it leaves behind, checked from the host by selftest.sh:
#   1 MiB        the pattern                         (pwrite, O_DIRECT)
#   3 MiB + 512  the pattern                         (not page-aligned)
#   8 MiB        zeroes over pattern's length        (pwrite, then BLKZEROOUT)
#   16 MiB       the pattern, then discarded         (content unspecified)
# Needs a disk of at least 17 MiB.
set -e
dev=${GUEST_DISK:?no virtio-blk disk}
name=${dev#/dev/}
note() { echo "GUEST-NOTE: $*"; }
mib=1048576
pattern=/pattern.bin
length=$(stat -c %s "$pattern")

set -- "/sys/block/$name/mq/"*
note "disk $dev: $(blktool size "$dev") bytes, logical block $(blktool sectorsize "$dev")," \
	"read-only $(blktool getro "$dev"), cache $(cat "/sys/block/$name/cache_type"), queues $#"

for offset in $mib $((3 * mib + 512)); do
	blktool pwrite "$dev" "$offset" "$pattern"
	blktool pread "$dev" "$offset" "$length" /tmp/back
	cmp "$pattern" /tmp/back
done
note "pwrite/pread round trip ok, md5 $(md5sum </tmp/back | cut -d' ' -f1)"

blktool pwrite "$dev" $((8 * mib)) "$pattern"
blktool zeroout "$dev" $((8 * mib)) "$length"
head -c "$length" /dev/zero >/tmp/zeroes
blktool pread "$dev" $((8 * mib)) "$length" /tmp/back
cmp /tmp/zeroes /tmp/back
note "zeroout ok (write_zeroes_max_bytes $(cat "/sys/block/$name/queue/write_zeroes_max_bytes"))"

if [ "$(cat "/sys/block/$name/queue/discard_max_bytes")" -gt 0 ]; then
	blktool pwrite "$dev" $((16 * mib)) "$pattern"
	blktool discard "$dev" $((16 * mib)) "$length"
	note "discard ok"
else
	note "the device offers no discard; skipped"
fi

# A write-through cache makes the kernel drop flushes; ask for write back so
# the FLUSH reaches the back end (possible when the device offers CONFIG_WCE).
if [ "$(cat "/sys/block/$name/cache_type")" != "write back" ]; then
	echo "write back" >"/sys/block/$name/cache_type" 2>/dev/null || true
fi
blktool flush "$dev"
note "flush ok (cache $(cat "/sys/block/$name/cache_type"))"
