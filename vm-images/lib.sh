# Shared by the vm-images scripts; sourced, not run. Callers set `log_name`.
# shellcheck shell=bash

log() { echo "${log_name:-vm-images}: $*" >&2; }

die() {
	log "error: $*"
	exit 1
}

wanted_packages=()

# want_package PACKAGE [COMMAND]: queue PACKAGE for installation when COMMAND is
# not on PATH or, without COMMAND, when the package is not installed.
want_package() {
	local package=$1 command=${2:-}
	if [ -n "$command" ]; then
		command -v "$command" >/dev/null 2>&1 && return 0
	elif [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ]; then
		return 0
	fi
	wanted_packages+=("$package")
}

apt_updated=0
apt_update_once() {
	[ "$apt_updated" = 1 ] && return 0
	[ "$(id -u)" = 0 ] || die "apt-get update needs root"
	log "apt-get update"
	apt-get update -qq >&2
	apt_updated=1
}

# Installs what want_package queued, without recommends to keep CI fast.
install_wanted_packages() {
	[ ${#wanted_packages[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "missing ${wanted_packages[*]} and there is no apt-get"
	[ "$(id -u)" = 0 ] || die "missing packages: ${wanted_packages[*]}; install them or run as root"
	apt_update_once
	log "installing ${wanted_packages[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${wanted_packages[@]}" >&2
	wanted_packages=()
}

# Filters a serial console stream for reading: drops CRs and the terminal
# escape sequences SeaBIOS sends (reset, no line wrap, clear screen), which
# would otherwise reset or reconfigure the reader's terminal.
clean_console() { sed -u -e 's/\r//g' -e 's/\x1bc//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g'; }

# QEMU option values are comma-separated; a literal comma is written twice.
qemu_escape() { printf '%s' "${1//,/,,}"; }

# Microseconds since the epoch, for measuring run times.
now_us() { printf '%s' "${EPOCHREALTIME/./}"; }

# Formats a microsecond interval as seconds with one decimal.
format_us() { printf '%d.%d' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); }
