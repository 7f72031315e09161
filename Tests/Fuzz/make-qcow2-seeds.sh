#!/usr/bin/env bash
# Writes the qcow2-image fuzz target's seed corpus (Tests/Fuzz/Corpus/qcow2-image): small images
# made by qemu-img (512-byte clusters where the feature allows, so each seed is a few KiB),
# each prefixed with the 8 bytes that seed the body's operations.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
out=Corpus/qcow2-image
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seed() { printf '\x01\x23\x45\x67\x89\xab\xcd\xef' > "$out/$1"; cat "$2" >> "$out/$1"; }
make() { # name, create options, qemu-io commands...
	local name=$1 options=$2
	shift 2
	qemu-img create -q -f qcow2 -o "$options" "$work/$name" 256k
	for command in "$@"; do qemu-io -f qcow2 -c "$command" "$work/$name" >/dev/null; done
	seed "$name" "$work/$name"
}
make v3-data cluster_size=512 "write -P 0x11 0 4k" "write -P 0x22 100k 1536"
make v2-data cluster_size=512,compat=0.10 "write -P 0x33 8k 2k"
make zero-clusters cluster_size=512 "write -P 0x44 0 8k" "write -z 2k 4k"
make refcount-1-bit cluster_size=512,refcount_bits=1 "write -P 0x55 0 16k"
make refcount-64-bit cluster_size=512,refcount_bits=64 "write -P 0x66 32k 16k"
make extended-l2 cluster_size=16384,extended_l2=on "write -P 0x77 2k 1k" "write -z 8k 1k"
head -c 65536 /dev/zero | tr '\0' 'a' > "$work/text"
qemu-img convert -q -c -O qcow2 -o cluster_size=4096 "$work/text" "$work/compressed"
seed compressed "$work/compressed"
qemu-img create -q -f qcow2 -u -o cluster_size=512 -b /nonexistent/base.raw -F raw "$work/missing-backing" 256k
seed missing-backing "$work/missing-backing"
ls -l "$out"
