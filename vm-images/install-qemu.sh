#!/usr/bin/env bash
# Installs the QEMU builds the tests run against, side by side, from Debian packages:
#   debian12            the host's own QEMU (Debian 12: 7.2), installed with apt
#   debian13            Debian 13's QEMU (10.0), in a debootstrap tree
#   debian13-backports  the newest QEMU Debian packages (Debian 13 backports: 11.1 today)
# Each gets out/qemu/NAME/bin/ with qemu-system-x86_64, qemu-img, qemu-io and
# qemu-storage-daemon, and out/qemu/NAME/version with the version the emulator reports.
# A tree's programs run in a private mount namespace whose /usr (and ld.so.cache) are the
# tree's: every host path (images, sockets, /dev, /proc, /tmp) stays where it is, and nothing
# is mounted outside that one process, so removing out/ is always safe.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="$here/out/qemu"
log_name=install-qemu
# shellcheck source=lib.sh
. "$here/lib.sh"

all_names=(debian12 debian13 debian13-backports)
tools=(qemu-system-x86_64 qemu-img qemu-io qemu-storage-daemon)
# What a tree needs: the emulator and its firmware, the tools, and the block driver modules
# (qemu-block-extra holds QEMU's libblkio driver, virtio-blk-vhost-user).
tree_packages=(qemu-system-x86 qemu-utils qemu-block-extra qemu-system-data seabios ipxe-qemu)

usage() {
	cat <<EOF
usage: $(basename "$0") [--force] [NAME...]

Installs the QEMU builds named (default: all of ${all_names[*]}) under
$out/NAME: bin/ holds qemu-system-x86_64, qemu-img, qemu-io and
qemu-storage-daemon, and the file version the emulator's version. debian12 is the
host's qemu-system-x86 (apt); debian13 and debian13-backports are Debian 13
trees made with debootstrap, whose programs run in a private mount namespace
with the tree's /usr. Skips a build that is already installed; --force
rebuilds it. Root only (apt, debootstrap, mount namespaces).

  $(basename "$0") --list    prints NAME VERSION for each installed build
EOF
}

force=0 list=0 names=()
while [ $# -gt 0 ]; do
	case "$1" in
	--force) force=1 ;;
	--list) list=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	debian12 | debian13 | debian13-backports) names+=("$1") ;;
	*)
		log "unknown argument '$1'"
		usage >&2
		exit 2
		;;
	esac
	shift
done
[ ${#names[@]} -gt 0 ] || names=("${all_names[@]}")

if [ "$list" = 1 ]; then
	for name in "${names[@]}"; do
		[ -f "$out/$name/version" ] && printf '%s %s\n' "$name" "$(cat "$out/$name/version")"
	done
	exit 0
fi

[ "$(id -u)" = 0 ] || die "installing QEMU builds needs root"

# The Debian mirror this host uses (deb822 sources first, then sources.list).
debian_mirror() {
	local uri
	uri=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n 1)
	[ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
	printf '%s' "${uri:-http://deb.debian.org/debian}"
}

# The version qemu-system-x86_64 prints, e.g. 10.0.13.
emulator_version() {
	"$1" --version | sed -n 's/^QEMU emulator version \([0-9][0-9.]*\).*/\1/p' | head -n 1
}

# write_wrappers NAME TREE: bin/ wrappers for every tool; TREE empty means the host's programs.
write_wrappers() {
	local name=$1 tree=$2 tool
	mkdir -p "$out/$name/bin"
	for tool in "${tools[@]}"; do
		if [ -z "$tree" ]; then
			printf '#!/bin/sh\nexec /usr/bin/%s "$@"\n' "$tool" >"$out/$name/bin/$tool"
		else
			# exec all the way down: the PID that starts is the program's, so signals reach it.
			cat >"$out/$name/bin/$tool" <<EOF
#!/bin/sh
# $tool from the $name tree, in a mount namespace of its own whose /usr is the tree's.
exec unshare --mount --propagation private -- /bin/sh -c 'mount --bind "\$1/usr" /usr && mount --bind "\$1/etc/ld.so.cache" /etc/ld.so.cache && shift && exec "\$@"' sh "$tree" /usr/bin/$tool "\$@"
EOF
		fi
		chmod 0755 "$out/$name/bin/$tool"
	done
}

install_host() {
	want_package qemu-system-x86 qemu-system-x86_64
	want_package qemu-utils qemu-img
	want_package qemu-system-common qemu-storage-daemon
	install_wanted_packages
	write_wrappers debian12 ""
}

# install_tree NAME SUITE: a minimal Debian 13 tree with QEMU from SUITE (trixie or
# trixie-backports), built in a temporary directory and moved into place when complete.
install_tree() {
	local name=$1 suite=$2 mirror building
	want_package debootstrap debootstrap
	install_wanted_packages
	mirror=$(debian_mirror)
	building="$out/.$name.building"
	rm -rf "$building" "$out/$name"
	mkdir -p "$building"
	log "$name: debootstrap trixie from $mirror"
	debootstrap --variant=minbase trixie "$building/root" "$mirror" >"$out/$name.debootstrap.log" 2>&1 ||
		die "debootstrap failed; see $out/$name.debootstrap.log"
	if [ "$suite" != trixie ]; then
		echo "deb $mirror $suite main" >"$building/root/etc/apt/sources.list.d/$suite.list"
	fi
	log "$name: installing ${tree_packages[*]} from $suite"
	chroot "$building/root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
		"apt-get update -qq && apt-get install -y -qq --no-install-recommends -t $suite ${tree_packages[*]}" \
		>"$out/$name.apt.log" 2>&1 || die "apt-get in the $name tree failed; see $out/$name.apt.log"
	# Nothing of the tree's apt caches is needed afterwards.
	rm -rf "$building/root/var/cache/apt/archives/"*.deb "$building/root/var/lib/apt/lists/"*_Packages
	mv "$building" "$out/$name"
	write_wrappers "$name" "$out/$name/root"
}

mkdir -p "$out"
for name in "${names[@]}"; do
	if [ "$force" = 0 ] && [ -f "$out/$name/version" ] && [ -x "$out/$name/bin/qemu-system-x86_64" ]; then
		continue
	fi
	rm -f "$out/$name/version"
	case "$name" in
	debian12) install_host ;;
	debian13) install_tree debian13 trixie ;;
	debian13-backports) install_tree debian13-backports trixie-backports ;;
	esac
	version=$(emulator_version "$out/$name/bin/qemu-system-x86_64")
	[ -n "$version" ] || die "$name: qemu-system-x86_64 does not start"
	printf '%s\n' "$version" >"$out/$name/version"
	log "$name: QEMU $version"
done
