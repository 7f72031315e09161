#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer and AddressSanitizer and runs each for SECONDS
# (default 60) on a copy of its committed corpus; crashes are written to .build-fuzz/findings.
# A crash input, once fixed, goes into Tests/Fuzz/Corpus/<target>/ so the normal test suite
# (FuzzReplayTests) replays it forever.
#
#   Tests/Fuzz/run-fuzzers.sh [SECONDS] [TARGET...]     e.g. Tests/Fuzz/run-fuzzers.sh 600
#
# Targets: message-decoder dispatch descriptor-chain block-request iommu-model qcow2-image (default: all).
# FUZZ_SCRATCH overrides the build directory (.build-fuzz).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(message-decoder dispatch descriptor-chain block-request iommu-model qcow2-image)

scratch=${FUZZ_SCRATCH:-.build-fuzz}
# -enable-testing: the bodies reach internal entry points (@testable import) in release builds.
flags=(-c release --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -enable-testing)
mkdir -p "$scratch"
status=0
for target in "${targets[@]}"; do
	# The linker warns about every ASan helper symbol; only real errors matter.
	if ! swift build "${flags[@]}" --product "fuzz-$target" >"$scratch/build-$target.log" 2>&1; then
		grep -v "Cannot export local symbol" "$scratch/build-$target.log" | tail -20
		echo "fuzz-$target: BUILD FAILED"
		exit 2
	fi
	binary="$(swift build "${flags[@]}" --show-bin-path)/fuzz-$target"
	work="$scratch/corpus/$target"
	# Not "$scratch/artifacts": SwiftPM owns that directory and empties it on every build.
	artifacts="$scratch/findings/$target"
	mkdir -p "$work" "$artifacts"
	cp -n Tests/Fuzz/Corpus/"$target"/* "$work"/ 2>/dev/null || true
	echo "fuzz-$target: ${seconds}s"
	# Swift's crash backtracer trips AddressSanitizer and its helper keeps the pipe open: off.
	set +e
	SWIFT_BACKTRACE=enable=no "$binary" "$work" -max_total_time="$seconds" -artifact_prefix="$artifacts/" -print_final_stats=1 2>&1 |
		grep -E "^#[0-9]+ *DONE|stat::number_of_executed_units|ERROR|SUMMARY|Test unit written"
	fuzzer_status=${PIPESTATUS[0]}
	set -e
	if [ "$fuzzer_status" -ne 0 ]; then
		echo "fuzz-$target: the fuzzer exited with status $fuzzer_status"
		status=1
	fi
	if [ -n "$(find "$artifacts" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -print -quit)" ]; then
		echo "fuzz-$target: FOUND problems, inputs in $artifacts"
		status=1
	elif [ "$fuzzer_status" -eq 0 ]; then
		echo "fuzz-$target: clean"
	fi
done
exit $status
