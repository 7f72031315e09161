#!/usr/bin/env bash
# Builds the minimal test guest from Debian packages:
#   out/vmlinuz    the kernel of the linux-image-*-cloud-amd64 package that
#                  linux-image-cloud-amd64 currently depends on
#   out/base.cpio  a newc initramfs: busybox-static with applet links, the virtio
#                  modules, /bin/blktool (guest-tools/blktool.c) and /init
#                  (guest-tools/init)
# Does nothing when the outputs match their inputs (kernel package version,
# busybox version, the sources here); --force rebuilds anyway.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="$here/out"
tools="$here/guest-tools"
log_name=build-guest
# shellcheck source=lib.sh
. "$here/lib.sh"

# Load order matters (virtio before virtio_ring fails with "unknown symbol").
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk)
meta_package=linux-image-cloud-amd64

usage() {
	cat <<EOF
usage: $(basename "$0") [--force]

Builds $out/vmlinuz and $out/base.cpio (the test guest's kernel and
initramfs) from Debian packages, installing the build tools it needs with
apt-get when they are missing. Skips the work when the outputs are up to date.

  --force    rebuild even if the outputs are up to date
  -h,--help  this text
EOF
}

force=0
while [ $# -gt 0 ]; do
	case "$1" in
	--force) force=1 ;;
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

# Queues the build tools that are missing; dpkg and apt-get come with Debian.
want_build_tools() {
	if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
		die "this needs a Debian-like system with apt-get and dpkg"
	fi
	want_package cpio cpio
	want_package gcc gcc
	want_package binutils readelf
	want_package libc6-dev
	want_package busybox-static
}

# Prints one field of a package's candidate version; nothing if apt does not know it.
package_field() {
	{ apt-cache show --no-all-versions "$1" 2>/dev/null || true; } |
		awk -v field="$2: " 'index($0, field) == 1 { print substr($0, length(field) + 1); exit }'
}

# Sets kernel_package and kernel_version from the meta package's dependency.
find_kernel_package() {
	local depends
	depends=$(package_field "$meta_package" Depends)
	if [ -z "$depends" ]; then
		apt_update_once
		depends=$(package_field "$meta_package" Depends)
	fi
	kernel_package=$(grep -o 'linux-image-[^ ,]*-cloud-amd64' <<<"$depends" | head -n 1 || true)
	[ -n "$kernel_package" ] || die "cannot tell which kernel $meta_package depends on (Depends: '$depends')"
	# The meta package pins the version: "linux-image-X-cloud-amd64 (= V)".
	kernel_version=$(sed -n "s/.*$kernel_package (= \([^)]*\)).*/\1/p" <<<"$depends")
	[ -n "$kernel_version" ] || kernel_version=$(package_field "$kernel_package" Version)
	[ -n "$kernel_version" ] || die "apt knows no version of $kernel_package"
}

# Prints the text that identifies this build; equal text means equal outputs.
recipe() {
	echo "kernel=$kernel_package=$kernel_version"
	echo "busybox-static=$(dpkg-query -W -f='${Version}' busybox-static)"
	echo "modules=${modules[*]}"
	(cd "$here" && sha256sum build-guest.sh lib.sh guest-tools/init guest-tools/blktool.c)
}

# Fetches the kernel .deb into out/cache unless it is there already; prints its path.
fetch_kernel_deb() {
	local cache="$out/cache" deb
	mkdir -p "$cache"
	for deb in "$cache/${kernel_package}"_*.deb; do
		[ -e "$deb" ] || continue
		if [ "$(dpkg-deb -f "$deb" Version)" = "$kernel_version" ]; then
			echo "$deb"
			return 0
		fi
		rm -f "$deb"
	done
	log "downloading $kernel_package $kernel_version"
	# apt-get download writes to the current directory. As root it would warn that
	# its sandbox user cannot write there; downloading as root is what we want.
	local sandbox=()
	[ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
	(cd "$cache" && apt-get download -q "${sandbox[@]}" "$kernel_package=$kernel_version" >&2)
	for deb in "$cache/${kernel_package}"_*.deb; do
		[ -e "$deb" ] && echo "$deb" && return 0
	done
	die "apt-get download left no .deb for $kernel_package in $cache"
}

build() {
	local deb work root kver module ko applet
	deb=$(fetch_kernel_deb)
	work="$out/work"
	rm -rf "$work"
	mkdir -p "$work/kernel"
	dpkg -x "$deb" "$work/kernel"

	kver=$(find "$work/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' -quit)
	[ -n "$kver" ] || die "$deb has no lib/modules/<version>"
	[ -f "$work/kernel/boot/vmlinuz-$kver" ] || die "$deb has no boot/vmlinuz-$kver"

	root="$work/root"
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,"lib/modules/$kver"}
	chmod 1777 "$root/tmp"

	# busybox-static: the one binary behind every applet link.
	local busybox
	busybox=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -n 1 || true)
	[ -x "$busybox" ] || die "busybox-static installed no bin/busybox"
	if readelf -l "$busybox" | grep -q 'Requesting program interpreter'; then
		die "$busybox is dynamically linked; busybox-static is needed"
	fi
	install -m 0755 "$busybox" "$root/bin/busybox"
	while read -r applet; do
		case "$applet" in
		bin/busybox | linuxrc | "") continue ;;
		esac
		ln -sf /bin/busybox "$root/$applet"
	done < <("$busybox" --list-full)

	# The virtio modules, flat under lib/modules/<kver>, and their load order.
	: >"$root/etc/guest-modules"
	for module in "${modules[@]}"; do
		ko=$(find "$work/kernel/lib/modules/$kver/kernel" -name "$module.ko" -print -quit)
		if [ -n "$ko" ]; then
			install -m 0644 "$ko" "$root/lib/modules/$kver/$module.ko"
			echo "$module" >>"$root/etc/guest-modules"
		elif grep -q "/$module\.ko$" "$work/kernel/lib/modules/$kver/modules.builtin"; then
			log "$module is built into $kver"
		else
			die "$kver has no module $module (is it compressed now? the init expects .ko)"
		fi
	done

	echo "$kver" >"$root/etc/guest-kernel-version"
	printf 'kernel-package=%s\nkernel-package-version=%s\nkernel-release=%s\nbusybox-static=%s\n' \
		"$kernel_package" "$kernel_version" "$kver" \
		"$(dpkg-query -W -f='${Version}' busybox-static)" >"$root/etc/guest-build-info"

	gcc -static -O2 -Wall -Wextra -o "$root/bin/blktool" "$tools/blktool.c"
	install -m 0755 "$tools/init" "$root/init"

	(cd "$root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --reproducible --quiet) >"$out/base.cpio.tmp"
	cp "$work/kernel/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
	cp "$root/etc/guest-build-info" "$out/guest-build-info"
	mv "$out/base.cpio.tmp" "$out/base.cpio"
	mv "$out/vmlinuz.tmp" "$out/vmlinuz"
	rm -rf "$work"
	log "built $out/vmlinuz ($kver) and $out/base.cpio ($(du -h "$out/base.cpio" | cut -f1))"
}

mkdir -p "$out"
# One build at a time: parallel test runs may all find the outputs missing.
exec {lock_fd}>"$out/.lock"
flock "$lock_fd"

want_build_tools
install_wanted_packages
find_kernel_package
wanted=$(recipe)
if [ "$force" = 0 ] && [ -f "$out/vmlinuz" ] && [ -f "$out/base.cpio" ] &&
	[ "$(cat "$out/.stamp" 2>/dev/null)" = "$wanted" ]; then
	log "up to date ($kernel_package $kernel_version)"
	exit 0
fi
rm -f "$out/.stamp"
build
echo "$wanted" >"$out/.stamp"
