#!/usr/bin/env bash
# Boots the test guest with a vhost-user-blk disk served by a back-end daemon,
# runs a workload inside it and exits with the workload's status.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="$here/out"
log_name=run-guest
# shellcheck source=lib.sh
. "$here/lib.sh"

QEMU=${QEMU:-qemu-system-x86_64}

# Exit statuses of the launcher itself; a workload's own status passes through.
readonly EXIT_USAGE=2
readonly EXIT_TIMEOUT=124
readonly EXIT_NO_RESULT=200
readonly EXIT_DAEMON_START=201
readonly EXIT_DAEMON_FAILED=202
readonly EXIT_MIGRATION_FAILED=203

usage() {
	cat <<EOF
usage: $(basename "$0") --image DISK [--daemon PATH | --backend qsd | --no-daemon --socket PATH | --no-disk]
           [--workload FILE.sh | --command 'shell text'] [options]

Starts a vhost-user-blk back end on DISK, boots the test guest (vm-images/out,
built on first use) attached to it under QEMU, runs the workload as
/workload.sh in the guest and exits with the workload's exit status.

Back end (exactly one):
  --daemon PATH          run PATH --socket-path=SOCK --blk-file=DISK [--read-only]
                         --num-queues=N [daemon args]
  --backend qsd          run qemu-storage-daemon exporting DISK instead
  --no-daemon            start nothing; someone else serves --socket
  --no-disk              no vhost-user disk at all (a baseline for --migrate figures)
Guest:
  --image DISK           disk image or block device (not needed with --no-daemon)
  --workload FILE        shell script to run in the guest (busybox sh)
  --command TEXT         shell text to run in the guest instead of a file
  --add-file HOST:GUEST  put HOST (file or directory) at absolute GUEST path in
                         the initramfs; repeatable; not under /tmp (a tmpfs)
  --num-queues N         virtqueues of the device (QEMU's default when omitted: one per
                         vCPU); also the daemon's --num-queues (its default otherwise)
  --queue-size N         virtqueue size (QEMU's default when omitted)
  --read-only            export read-only (daemon --read-only, qsd writable=off)
  --smp N                guest CPUs (default 1)
  --memory SIZE          guest RAM, e.g. 512M (default 512M)
  --machine TYPE         QEMU machine with options (default q35; pc works too)
  --accel NAME           QEMU accelerator (default tcg; nested KVM fails here)
  --append TEXT          extra kernel command-line arguments
  --allow-reboot         let the guest reboot (drops -no-reboot)
  --device-opt K=V       extra vhost-user-blk-pci property; repeatable
  --chardev-opt K=V      extra property of the socket chardev
  --reconnect SECONDS    QEMU reconnects to a back end that went away: the chardev's
                         reconnect-ms= (QEMU 9.2 and later) or reconnect= (before)
  --qemu-arg ARG         extra QEMU argument, placed before the device; repeatable,
                         one word each: --qemu-arg -device --qemu-arg intel-iommu
  --iommu MODE           put the disk behind an emulated Intel vIOMMU: MODE lazy or
                         strict (q35 with kernel-irqchip=split, -device intel-iommu,
                         intremap=on,device-iotlb=on, the disk behind a pcie-root-port
                         (so that ATS is real), iommu_platform=on,
                         ats=on,disable-legacy=on on the disk (a transitional device
                         cannot have iommu_platform), kernel intel_iommu=on; strict adds
                         iommu.strict=1, an IOTLB invalidation on every unmap)
Daemon:
  --socket PATH          vhost-user socket (default: in a temporary directory)
  --daemon-arg ARG       extra argument for the daemon; repeatable
  --daemon-log FILE      daemon stdout and stderr (default: temporary, kept on failure)
  --daemon-wait SECONDS  how long to wait for the socket (default 30)
Live migration (docs/migration.md):
  --migrate N            once the guest prints GUEST-MIGRATE-READY, move it N times
                         between QEMUs on this host: each time a second QEMU, the
                         same command line plus -incoming, connects to the same
                         vhost-user socket and QMP 'migrate' moves the running guest
                         to it; the old QEMU then quits. Prints one line per
                         migration: status, total-time, downtime, setup-time (ms,
                         from QMP query-migrate)
  --after-migrations TEXT
                         host shell text run after the last migration (for example,
                         to tell the workload to finish)
  --kill-daemon-during-migration K
                         during migration K, kill -9 the daemon once the migration
                         is active and start it again on the same socket (use with
                         --reconnect): the migration may succeed or fail, and the
                         guest must keep its disk either way
Run:
  --timeout SECONDS      kill QEMU and the daemon after this long (default 120)
  --serial-log FILE      copy of the serial console (default: temporary, kept on failure)
  --quiet                do not copy the serial console to stdout
  -h, --help             this text

QEMU:
  --qemu NAME            the QEMU build to run: debian12 (7.2), debian13 (10.0) or
                         debian13-backports (the newest Debian packages), installed by
                         install-qemu.sh on first use; qemu-storage-daemon comes from
                         the same build (default: the host's qemu-system-x86_64)

Environment: QEMU overrides the emulator binary (default qemu-system-x86_64).

Exit status: the workload's status from the guest's GUEST-EXIT=<code> line;
$EXIT_TIMEOUT on timeout; $EXIT_NO_RESULT if the guest never printed GUEST-EXIT (QEMU failed,
the kernel or /init failed, or the workload powered off by itself);
$EXIT_DAEMON_START if the daemon never created its socket; $EXIT_DAEMON_FAILED if the workload
passed but the daemon crashed or exited with an error; $EXIT_MIGRATION_FAILED if the workload
passed but a migration did not complete (other than the one --kill-daemon-during-migration
names); $EXIT_USAGE for usage errors.

Guest markers on the serial console: GUEST-BOOTED, GUEST-EXIT=<code>,
GUEST-NO-WORKLOAD, GUEST-INIT-FAILED: <why>, GUEST-NOTE: <text> (free for
workloads). The workload finds the disk in \$GUEST_DISK (normally /dev/vda).
EOF
}

usage_error() {
	log "$*"
	log "see $(basename "$0") --help"
	exit "$EXIT_USAGE"
}

image="" daemon="" backend="" no_daemon=0 no_disk=0 qemu_build="" reconnect=""
num_queues="" queue_size="" read_only=0 smp=1 memory=512M machine=q35 accel=tcg
workload="" command="" append="" allow_reboot=0 iommu=""
socket="" daemon_log="" daemon_wait=30 timeout=120 serial_log="" quiet=0
migrate_count=0 after_migrations="" kill_during_migration=0
add_files=() device_opts=() chardev_opts=() qemu_args=() daemon_args=()

# Options take their value as the next argument or after '='.
while [ $# -gt 0 ]; do
	option=$1 value="" has_value=0
	if [[ "$option" == --*=* ]]; then
		value=${option#*=} option=${option%%=*} has_value=1
	fi
	case "$option" in
	--read-only | --no-daemon | --no-disk | --allow-reboot | --quiet | -h | --help)
		[ "$has_value" = 0 ] || usage_error "$option takes no value"
		;;
	--*)
		if [ "$has_value" = 0 ]; then
			[ $# -ge 2 ] || usage_error "$option needs a value"
			value=$2
			shift
		fi
		;;
	*) usage_error "unexpected argument '$option'" ;;
	esac
	shift
	case "$option" in
	--image) image=$value ;;
	--daemon) daemon=$value ;;
	--backend) backend=$value ;;
	--no-daemon) no_daemon=1 ;;
	--no-disk) no_disk=1 ;;
	--num-queues) num_queues=$value ;;
	--queue-size) queue_size=$value ;;
	--read-only) read_only=1 ;;
	--smp) smp=$value ;;
	--memory) memory=$value ;;
	--machine) machine=$value ;;
	--accel) accel=$value ;;
	--workload) workload=$value ;;
	--command) command=$value ;;
	--add-file) add_files+=("$value") ;;
	--append) append=$value ;;
	--allow-reboot) allow_reboot=1 ;;
	--device-opt) device_opts+=("$value") ;;
	--chardev-opt) chardev_opts+=("$value") ;;
	--qemu-arg) qemu_args+=("$value") ;;
	--iommu) iommu=$value ;;
	--qemu) qemu_build=$value ;;
	--migrate) migrate_count=$value ;;
	--after-migrations) after_migrations=$value ;;
	--kill-daemon-during-migration) kill_during_migration=$value ;;
	--reconnect) reconnect=$value ;;
	--socket) socket=$value ;;
	--daemon-arg) daemon_args+=("$value") ;;
	--daemon-log) daemon_log=$value ;;
	--daemon-wait) daemon_wait=$value ;;
	--timeout) timeout=$value ;;
	--serial-log) serial_log=$value ;;
	--quiet) quiet=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*) usage_error "unknown option $option" ;;
	esac
done

is_count() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

backends=0
[ -n "$daemon" ] && backends=$((backends + 1))
[ -n "$backend" ] && backends=$((backends + 1))
[ "$no_daemon" = 1 ] && backends=$((backends + 1))
[ "$no_disk" = 1 ] && backends=$((backends + 1))
[ "$backends" = 1 ] || usage_error "give exactly one of --daemon PATH, --backend qsd, --no-daemon, --no-disk"
[ -z "$backend" ] || [ "$backend" = qsd ] || usage_error "unknown backend '$backend' (only qsd)"
if [ "$no_daemon" = 1 ]; then
	[ -n "$socket" ] || usage_error "--no-daemon needs --socket"
elif [ "$no_disk" = 0 ]; then
	[ -n "$image" ] || usage_error "--image is required"
	[ -f "$image" ] || [ -b "$image" ] || usage_error "no disk image or block device at '$image'"
fi
if [ -n "$daemon" ] && [ ! -x "$daemon" ]; then
	usage_error "daemon '$daemon' is not an executable file"
fi
[ -n "$workload" ] || [ -n "$command" ] || usage_error "give --workload FILE or --command TEXT"
[ -z "$workload" ] || [ -z "$command" ] || usage_error "give only one of --workload and --command"
[ -z "$workload" ] || [ -f "$workload" ] || usage_error "no workload file '$workload'"
[ -z "$num_queues" ] || is_count "$num_queues" || usage_error "--num-queues must be a positive integer"
[ -z "$reconnect" ] || is_count "$reconnect" || usage_error "--reconnect must be a positive number of seconds"
is_count "$smp" || usage_error "--smp must be a positive integer"
[ "$migrate_count" = 0 ] || is_count "$migrate_count" || usage_error "--migrate must be a positive integer"
[ "$kill_during_migration" = 0 ] || { is_count "$kill_during_migration" && [ "$kill_during_migration" -le "$migrate_count" ]; } ||
	usage_error "--kill-daemon-during-migration must name one of the --migrate migrations"
[ "$kill_during_migration" = 0 ] || [ -n "$daemon" ] || usage_error "--kill-daemon-during-migration needs --daemon"
is_count "$timeout" || usage_error "--timeout must be a positive number of seconds"
is_count "$daemon_wait" || usage_error "--daemon-wait must be a positive number of seconds"
[ -z "$queue_size" ] || is_count "$queue_size" || usage_error "--queue-size must be a positive integer"
[[ "$memory" =~ ^[1-9][0-9]*[MG]$ ]] || usage_error "--memory must look like 512M or 1G"
for spec in "${add_files[@]}"; do
	[[ "$spec" == *:/* ]] || usage_error "--add-file '$spec' is not HOST_PATH:/GUEST_PATH"
	[ -e "${spec%:*}" ] || usage_error "--add-file: no such file '${spec%:*}'"
	case "${spec##*:}" in
	/tmp | /tmp/* | /proc/* | /sys/* | /dev/*)
		usage_error "--add-file: ${spec##*:} would be hidden by a mount the guest makes"
		;;
	esac
done

# Tools: QEMU (unless overridden), qemu-storage-daemon for --backend qsd, cpio.
qsd=qemu-storage-daemon
if [ -n "$qemu_build" ]; then
	case "$qemu_build" in
	debian12 | debian13 | debian13-backports) ;;
	*) usage_error "--qemu takes debian12, debian13 or debian13-backports, not '$qemu_build'" ;;
	esac
	[ -x "$out/qemu/$qemu_build/bin/qemu-system-x86_64" ] || "$here/install-qemu.sh" "$qemu_build"
	QEMU=$out/qemu/$qemu_build/bin/qemu-system-x86_64
	qsd=$out/qemu/$qemu_build/bin/qemu-storage-daemon
elif [ "$QEMU" = qemu-system-x86_64 ]; then
	want_package qemu-system-x86 qemu-system-x86_64
else
	command -v "$QEMU" >/dev/null || die "QEMU=$QEMU is not an executable"
fi
[ "$backend" = qsd ] && [ -z "$qemu_build" ] && want_package qemu-system-common qemu-storage-daemon
want_package cpio cpio
[ "$migrate_count" = 0 ] || want_package socat socat
install_wanted_packages
if [ ! -f "$out/vmlinuz" ] || [ ! -f "$out/base.cpio" ]; then
	"$here/build-guest.sh"
fi

daemon_pid="" qemu_pid="" daemon_failure="" qemu_pids=() qmp_pid=""

# Stops the daemon we started: SIGTERM to its process group, then SIGKILL after 5 s. Sets
# daemon_failure when it had died by itself with an error, or crashed on the way out.
stop_daemon() {
	[ -n "$daemon_pid" ] || return 0
	local pid=$daemon_pid rc=0 tries=0
	daemon_pid=""
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null || rc=$?
		[ "$rc" = 0 ] || daemon_failure="the daemon exited by itself with status $rc"
		return 0
	fi
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 50 ]; do
		sleep 0.1
		tries=$((tries + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "warning: the daemon ignored SIGTERM for 5 s; sending SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	case "$rc" in
	0 | 143 | 137) ;; # clean exit, or the signal we sent
	*) daemon_failure="the daemon exited with status $rc after SIGTERM" ;;
	esac
}

# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	qmp_close
	local pid
	for pid in $qemu_pid "${qemu_pids[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	stop_daemon
	if [ "$rc" = 0 ]; then
		rm -rf "$run_dir"
	else
		# Keep the logs for a look; drop the bulky or live parts.
		rm -rf "$run_dir/initrd.cpio" "$run_dir/extra" "$run_dir/vhost-user-blk.sock"
		rmdir "$run_dir" 2>/dev/null || true
		[ ! -s "$serial_log" ] || log "serial console log: $serial_log"
		[ ! -s "$daemon_log" ] || log "daemon log: $daemon_log"
	fi
	exit "$rc"
}

# Per-run state. Logs that live here are kept when the run fails.
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/run-guest.XXXXXX")
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM
[ -n "$socket" ] || socket="$run_dir/vhost-user-blk.sock"
# sun_path holds 108 bytes with the terminating NUL.
[ ${#socket} -le 107 ] || die "socket path too long for a unix socket (${#socket} > 107): $socket"
[ -n "$serial_log" ] || serial_log="$run_dir/serial.log"
[ -n "$daemon_log" ] || daemon_log="$run_dir/daemon.log"

# The per-run initramfs: base.cpio plus /workload.sh and every --add-file.
build_initrd() {
	local stage="$run_dir/extra" spec host guest
	mkdir -p "$stage"
	if [ -n "$workload" ]; then
		cp "$workload" "$stage/workload.sh"
	else
		printf '%s\n' "$command" >"$stage/workload.sh"
	fi
	chmod 0755 "$stage/workload.sh"
	for spec in "${add_files[@]}"; do
		host=${spec%:*} guest=${spec##*:}
		mkdir -p "$stage$(dirname "$guest")"
		cp -a "$host" "$stage$guest"
	done
	cp "$out/base.cpio" "$run_dir/initrd.cpio"
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --quiet -A -F "$run_dir/initrd.cpio")
}

start_daemon() {
	local command_line=() waited=0
	if [ -n "$daemon" ]; then
		command_line=("$daemon" "--socket-path=$socket" "--blk-file=$image")
		[ "$read_only" = 1 ] && command_line+=(--read-only)
		[ -z "$num_queues" ] || command_line+=("--num-queues=$num_queues")
	else
		local writable=on
		[ "$read_only" = 1 ] && writable=off
		# qemu-storage-daemon exports one queue unless told; QEMU asks for one per vCPU.
		command_line=("$qsd"
			--blockdev "driver=file,node-name=d,filename=$(qemu_escape "$image")"
			--export "type=vhost-user-blk,id=e,node-name=d,addr.type=unix,addr.path=$(qemu_escape "$socket"),writable=$writable,num-queues=${num_queues:-$smp}")
	fi
	command_line+=("${daemon_args[@]}")
	if [ -e "$socket" ]; then
		[ -S "$socket" ] || die "$socket exists and is not a socket"
		rm -f "$socket"
	fi
	echo "+ ${command_line[*]}" >>"$daemon_log"
	# In a process group of its own (setsid execs, it does not fork here), so that
	# stopping it also reaches helpers a wrapper script may have started.
	setsid "${command_line[@]}" </dev/null >>"$daemon_log" 2>&1 &
	daemon_pid=$!
	# Bounded wait for the socket; stop early if the daemon dies.
	until [ -S "$socket" ]; do
		if ! kill -0 "$daemon_pid" 2>/dev/null; then
			local rc=0
			wait "$daemon_pid" || rc=$?
			daemon_pid=""
			log "the daemon exited with status $rc before creating $socket; its log ends:"
			tail -n 20 "$daemon_log" | sed 's/^/    /' >&2
			exit "$EXIT_DAEMON_START"
		fi
		if [ "$waited" -ge $((daemon_wait * 10)) ]; then
			log "the daemon did not create $socket within $daemon_wait s; its log ends:"
			tail -n 20 "$daemon_log" | sed 's/^/    /' >&2
			exit "$EXIT_DAEMON_START"
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
}

# Joins "key=value" options into ",key=value,..." for a QEMU option string.
join_opts() {
	local opt
	for opt in "$@"; do printf ',%s' "$opt"; done
}

case "$iommu" in
"") ;;
lazy | strict)
	[[ "$machine" == q35* ]] || usage_error "--iommu needs a q35 machine (intel-iommu), not $machine"
	machine+=",kernel-irqchip=split"
	# The disk sits behind a PCIe root port: on the root bus a virtio-pci function is not
	# PCI Express, has no ATS capability, and ats=on does nothing. Without ATS the guest
	# sends no device-IOTLB invalidations, QEMU then listens only for page-selective IOTLB
	# invalidations on vhost's behalf, and the domain-wide flushes of lazy mode never reach
	# the back end (docs/iommu.md).
	qemu_args=(-device intel-iommu,intremap=on,device-iotlb=on
		-device pcie-root-port,id=disk-port,bus=pcie.0,chassis=1 "${qemu_args[@]}")
	device_opts+=(bus=disk-port disable-legacy=on iommu_platform=on ats=on)
	append="intel_iommu=on${append:+ $append}"
	[ "$iommu" = lazy ] || append+=" iommu.strict=1"
	;;
*) usage_error "--iommu takes lazy or strict, not '$iommu'" ;;
esac

build_initrd
[ "$no_daemon" = 1 ] || [ "$no_disk" = 1 ] || start_daemon

# QEMU's own defaults unless asked: num-queues is one per vCPU, queue-size depends on the version.
device="vhost-user-blk-pci,chardev=c0"
[ -z "$num_queues" ] || device+=",num-queues=$num_queues"
[ -z "$queue_size" ] || device+=",queue-size=$queue_size"
if [ -n "$reconnect" ]; then
	# reconnect= is deprecated from QEMU 9.2 in favour of reconnect-ms=.
	qemu_version=$("$QEMU" --version | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
	read -r major minor <<<"${qemu_version:-0 0}"
	if [ "$major" -gt 9 ] || { [ "$major" = 9 ] && [ "$minor" -ge 2 ]; }; then
		chardev_opts+=("reconnect-ms=$((reconnect * 1000))")
	else
		chardev_opts+=("reconnect=$reconnect")
	fi
fi
device+=$(join_opts "${device_opts[@]}")
qemu_command=("$QEMU" -accel "$accel" -machine "$machine" -m "$memory" -smp "$smp" -nographic)
[ "$allow_reboot" = 1 ] || qemu_command+=(-no-reboot)
qemu_command+=(
	-nic none
	-object "memory-backend-memfd,id=mem,size=$memory,share=on" -numa "node,memdev=mem"
	"${qemu_args[@]}"
)
[ "$no_disk" = 1 ] || qemu_command+=(
	-chardev "socket,id=c0,path=$(qemu_escape "$socket")$(join_opts "${chardev_opts[@]}")"
	-device "$device"
)
qemu_command+=(
	-kernel "$out/vmlinuz" -initrd "$run_dir/initrd.cpio"
	-append "console=ttyS0 quiet panic=-1${append:+ $append}"
)

# QMP over socat, one connection at a time: the current source QEMU's.
qmp_open() {
	local path=$1 waited=0 greeting
	until [ -S "$path" ]; do
		[ "$waited" -lt 300 ] || return 1
		sleep 0.1
		waited=$((waited + 1))
	done
	coproc QMP { exec socat - "UNIX-CONNECT:$path" 2>/dev/null; }
	qmp_pid=$QMP_PID
	qmp_in=${QMP[1]} qmp_out=${QMP[0]}
	read -r -t 30 greeting <&"$qmp_out" || return 1
	qmp '{"execute":"qmp_capabilities"}' >/dev/null
}

# qmp JSON: sends one command, prints its reply line (events are skipped).
qmp() {
	local line
	printf '%s\n' "$1" >&"$qmp_in" || return 1
	while read -r -t 60 line <&"$qmp_out"; do
		case "$line" in *'"return"'* | *'"error"'*)
			printf '%s\n' "$line"
			return 0
			;;
		esac
	done
	return 1
}

qmp_close() {
	[ -n "$qmp_pid" ] || return 0
	exec {qmp_in}>&- {qmp_out}<&-
	kill "$qmp_pid" 2>/dev/null || true
	wait "$qmp_pid" 2>/dev/null || true
	qmp_pid=""
}

# json_number NAME REPLY / json_string NAME REPLY: a top-level field of a QMP reply.
json_number() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" <<<"$2" | head -n 1; }
json_string() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" <<<"$2" | head -n 1; }

# launch_qemu NUMBER [ARG...]: QEMU number NUMBER, its QMP socket qmp-NUMBER.sock, ARGs
# appended; its serial console into the shared console. Sets qemu_pid.
launch_qemu() {
	local number=$1
	shift
	timeout --kill-after=5 "$timeout" "${qemu_command[@]}" \
		-qmp "unix:$run_dir/qmp-$number.sock,server=on,wait=off" "$@" </dev/null >&"$console_fd" 2>&1 &
	qemu_pid=$!
	qemu_pids+=("$qemu_pid")
}

# The daemon dies (kill -9, no clean-up) and a new one starts on the same socket.
restart_daemon_hard() {
	local pid=$daemon_pid
	log "killing the daemon (kill -9) and starting it again"
	kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	daemon_pid=""
	echo "+ (restarted after kill -9)" >>"$daemon_log"
	# Not inherited by the new daemon: the console pipe (its reader would wait for the
	# daemon to exit) and QMP's coprocess pipes.
	start_daemon {console_fd}>&- {qmp_in}>&- {qmp_out}<&-
}

# migrate_to NUMBER: a new QEMU waits for the guest (-incoming), QMP migrate moves it there
# from the current one, which quits when it is done. Prints the migration's figures. On
# failure the guest stays where it was and the new QEMU is stopped.
migrate_to() {
	local number=$1 incoming="$run_dir/migration-$1.sock" source_pid=$qemu_pid reply status="" killed=0 waited=0
	launch_qemu "$number" -incoming "unix:$incoming"
	local target_pid=$qemu_pid
	qemu_pid=$source_pid
	until [ -S "$incoming" ]; do
		if ! kill -0 "$target_pid" 2>/dev/null || [ "$waited" -ge 600 ]; then
			log "migration $number: the destination QEMU did not start listening"
			kill -TERM "$target_pid" 2>/dev/null || true
			wait "$target_pid" 2>/dev/null || true
			return 1
		fi
		sleep 0.05
		waited=$((waited + 1))
	done
	reply=$(qmp "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:$incoming\"}}") || reply="no reply"
	case "$reply" in *'"return"'*) ;; *)
		log "migration $number: QMP migrate refused: $reply"
		kill -TERM "$target_pid" 2>/dev/null || true
		return 1
		;;
	esac
	while :; do
		reply=$(qmp '{"execute":"query-migrate"}') || { log "migration $number: QMP stopped answering"; return 1; }
		status=$(json_string status "$reply")
		case "$status" in completed | failed | cancelled) break ;; esac
		if [ "$number" = "$kill_during_migration" ] && [ "$killed" = 0 ] && [ "$status" = active ]; then
			restart_daemon_hard
			killed=1
		fi
		sleep 0.05
	done
	log "migration $number: status=$status total-time=$(json_number total-time "$reply")ms" \
		"downtime=$(json_number downtime "$reply")ms setup-time=$(json_number setup-time "$reply")ms"
	if [ "$status" = completed ]; then
		qmp '{"execute":"quit"}' >/dev/null || true
		qmp_close
		wait "$source_pid" 2>/dev/null || true
		qemu_pid=$target_pid
		qmp_open "$run_dir/qmp-$number.sock" || { log "migration $number: the destination's QMP does not answer"; return 1; }
		return 0
	fi
	[ -z "$(json_string error-desc "$reply")" ] || log "migration $number: $(json_string error-desc "$reply")"
	kill -TERM "$target_pid" 2>/dev/null || true
	wait "$target_pid" 2>/dev/null || true
	return 1
}

# The source QEMU boots the guest; once the workload prints GUEST-MIGRATE-READY the guest
# moves --migrate times, then --after-migrations runs. qemu_pid is the QEMU running it last.
run_migrations() {
	local number waited=0
	launch_qemu 0
	qmp_open "$run_dir/qmp-0.sock" || die "QEMU's QMP socket did not appear"
	until grep -a -q 'GUEST-MIGRATE-READY' "$serial_log"; do
		if ! kill -0 "$qemu_pid" 2>/dev/null || [ "$waited" -ge $((timeout * 10)) ]; then
			log "the workload never printed GUEST-MIGRATE-READY; no migration"
			migration_failures=$migrate_count
			return 0
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	for number in $(seq 1 "$migrate_count"); do
		if ! migrate_to "$number" && [ "$number" != "$kill_during_migration" ]; then
			migration_failures=$((migration_failures + 1))
		fi
		# The guest runs a while on its new (or old) host before the next move.
		sleep 1
	done
	if [ -n "$after_migrations" ]; then
		bash -c "$after_migrations" || log "warning: --after-migrations exited with $?"
	fi
}

# The serial console (and QEMU's own messages) go to the log as they are and,
# unless --quiet, cleaned to stdout. timeout(1) enforces the deadline and exits 124 on expiry.
: >"$serial_log"
if [ "$quiet" = 1 ]; then
	exec {console_fd}>>"$serial_log"
	tee_pid=""
else
	exec {console_fd}> >(tee -a "$serial_log" | clean_console)
	tee_pid=$!
fi
started=$(now_us)
migration_failures=0
if [ "$migrate_count" = 0 ]; then
	timeout --kill-after=5 "$timeout" "${qemu_command[@]}" </dev/null >&"$console_fd" 2>&1 &
	qemu_pid=$!
else
	run_migrations
fi
exec {console_fd}>&-
qemu_status=0
wait "$qemu_pid" || qemu_status=$?
qemu_pid=""
elapsed=$(format_us $(($(now_us) - started)))
[ -z "$tee_pid" ] || wait "$tee_pid" 2>/dev/null || true

stop_daemon

# Markers may sit anywhere in a line, after escape codes, with CR LF endings.
console=$(tr -d '\000' <"$serial_log" | clean_console)
boots=$(grep -a -c 'GUEST-BOOTED' <<<"$console" || true)
exit_marker=$(grep -a -o 'GUEST-EXIT=[0-9]\+' <<<"$console" | tail -n 1 || true)
init_failure=$(grep -a -o 'GUEST-INIT-FAILED: .*' <<<"$console" | tail -n 1 || true)

# timeout(1) exits 124, or 137 when QEMU ignored SIGTERM and needed SIGKILL.
if [ "$qemu_status" = 124 ] || { [ "$qemu_status" = 137 ] && [ "${elapsed%.*}" -ge "$timeout" ]; }; then
	log "timed out after $timeout s (guest booted $boots time(s)${exit_marker:+, saw $exit_marker}); killed QEMU"
	status=$EXIT_TIMEOUT
elif [ -n "$exit_marker" ]; then
	status=${exit_marker#GUEST-EXIT=}
	[ "$qemu_status" = 0 ] || log "warning: QEMU exited with status $qemu_status after the workload"
	log "guest workload exited with $status after $elapsed s (booted $boots time(s))"
else
	log "the guest never printed GUEST-EXIT (QEMU exit status $qemu_status, guest booted $boots time(s))"
	[ -z "$init_failure" ] || log "guest: $init_failure"
	grep -a -q 'GUEST-NO-WORKLOAD' <<<"$console" && log "guest: /workload.sh was missing"
	if [ -n "$console" ]; then
		log "console log ends:"
		tail -n 15 <<<"$console" | sed 's/^/    /' >&2
	fi
	status=$EXIT_NO_RESULT
fi
if [ -n "$daemon_failure" ]; then
	log "$daemon_failure; see $daemon_log"
	[ "$status" != 0 ] || status=$EXIT_DAEMON_FAILED
fi
if [ "$migration_failures" != 0 ]; then
	log "$migration_failures of $migrate_count migration(s) did not complete"
	[ "$status" != 0 ] || status=$EXIT_MIGRATION_FAILED
fi
exit "$status"
