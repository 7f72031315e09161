# Guest workload (busybox sh) for run-guest.sh --allow-reboot: tells a first
# boot from a second one by a marker in the disk's first block, reboots once,
# and passes when the second boot finds the marker the first one wrote.
# Leaves "second-boot-done" in the first block; needs a zeroed first block.
set -e
dev=${GUEST_DISK:?no virtio-blk disk}
mark=$(blktool getmark "$dev" 0)
case "$mark" in
"")
	blktool setmark "$dev" 0 first-boot-done
	echo "GUEST-NOTE: first boot; marker written, rebooting"
	reboot -f
	sleep 10
	echo "GUEST-NOTE: reboot -f returned"
	exit 1
	;;
first-boot-done)
	blktool setmark "$dev" 0 second-boot-done
	echo "GUEST-NOTE: second boot found the first boot's marker"
	;;
*)
	echo "GUEST-NOTE: unexpected marker '$mark'"
	exit 1
	;;
esac
