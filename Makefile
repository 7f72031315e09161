# The two commands of the README:
#   make demo   builds the daemon and a guest, boots the guest on a temporary image, shows I/O working
#   make test   installs what is missing, builds the guest image, runs every test (unit + QEMU guests)
# And: make bench   our daemon against qemu-storage-daemon, same front end; rewrites docs/benchmarks.md
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

APT_PACKAGES := pkg-config libglib2.0-dev libcap-ng-dev liburing-dev fio python3-seccomp qemu-system-x86 qemu-utils cpio socat busybox-static gcc libc6-dev debootstrap zlib1g-dev libzstd-dev libnbd-dev nbdkit librbd-dev ceph-mon ceph-osd ceph-mgr ceph-common qemu-block-extra
SWIFT_TEST_FLAGS ?=

.PHONY: setup guest qemu build release demo test unit-test guest-test sanitize bench clean

setup:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

guest: setup
	./vm-images/build-guest.sh

# The QEMU builds the guest tests run against: 7.2 (Debian 12), 10.0 (Debian 13) and the newest
# Debian packages (Debian 13 backports), side by side (vm-images/install-qemu.sh).
qemu: setup
	./vm-images/install-qemu.sh

build: setup
	swift build

# Release builds link the Swift runtime statically: only the parts used are loaded, which
# keeps the idle daemon's resident memory below qemu-storage-daemon's (docs/benchmarks.md).
RELEASE_FLAGS := -c release --static-swift-stdlib

release: setup
	swift build $(RELEASE_FLAGS) --product vhost-user-blk

demo: release guest
	./vm-images/demo.sh

# Unit and integration tests first, then the QEMU guests and the libblkio front end on their
# own (they need the daemon binary, and run side by side, one per core, against every QEMU build).
GUEST_SUITES := EndToEndTests\.(GuestDiskTests|LibblkioTests|Qcow2EndToEndTests|MigrationTests|RBDDaemonTests|NBDGuestTests)
# The guest tests that mostly wait (storage slowed to 100 ms a request, the daemon killed and
# QEMU reconnecting once a second: a fifth of a core each, measured in docs/testing.md) run in a
# second test process beside the other guests: each process's pool runs two tests at a time,
# and these would hold two of its threads idle for a third of the guest run.
# (With them, the RBD test that waits on a stopped OSD's timeouts: ~14 s, mostly asleep.)
WAITING_GUEST_TESTS := guestDataSurvivesTheDaemonKilledAtRandomMoments|killedDuringAllocatingWritesLeavesAConsistentImage|stoppedOSDWhileServing
# The in-process back-end tests run one at a time (GLib's default main context is one per
# process), mostly waiting on timeouts: in one process with the CPU-bound suites their chain
# started only once the pool had room and was the unit run's tail (ASan: the last 89 s of
# 273 s). They run in a process of their own beside the others.
SERIAL_SUITES := VhostUserBackendTests\.BackEndIntegration
# $(call beside,FIRST,SECOND): runs both commands at once, FIRST's output kept until both ended
# (then shown); fails when either failed. (Both `swift test --skip-build` runs pass
# --ignore-lock: SwiftPM's lock on the build directory, taken by whichever starts first, would
# hold the other until it ended, though neither builds.)
beside = log="$$(mktemp)"; ( $(1) ) > "$$log" 2>&1 & first=$$!; status=0; $(2) || status=$$?; \
	wait $$first || status=$$?; cat "$$log"; rm -f "$$log"; [ "$$status" = 0 ]
# The programs the tests start, from the build under test (flags in $(1)): tests never guess
# them (VhostTestSupport's TestBinary), so a sanitized run tests its own binaries.
test_binaries = VHOST_USER_BLK_BIN="$$(swift build $(1) --show-bin-path)/vhost-user-blk" \
	VHOST_USER_BLK_BENCH_BIN="$$(swift build $(1) --show-bin-path)/vhost-user-blk-bench"
TRACED_SUITES := DataPathAllocationTests BlockRequestAllocationTests TranslationAllocationTests
UNTRACED := $(foreach suite,$(TRACED_SUITES),--skip $(suite)) --skip IOMMUBenchmark
test: build guest qemu
	swift build --build-tests
	$(call beside,$(call test_binaries,) swift test --skip-build --ignore-lock --filter '$(SERIAL_SUITES)' $(SWIFT_TEST_FLAGS),\
	  $(call test_binaries,) swift test --skip-build --ignore-lock $(UNTRACED) --skip '$(GUEST_SUITES)' --skip '$(SERIAL_SUITES)' $(SWIFT_TEST_FLAGS))
	@# The data path allocates nothing per request: the preloaded allocation counter watches it,
	@# one suite per run; a suite that did not write its line to the log did not run, and fails.
	for suite in $(TRACED_SUITES); do \
	  log="$$(mktemp)"; \
	  VHOST_USER_ALLOCATION_LOG="$$log" LD_PRELOAD="$$(swift build --show-bin-path)/libVhostAllocationCounter.so" \
	    swift test --skip-build --filter "$$suite"; \
	  grep "^$$suite " "$$log" || { echo "$$suite did not run: its allocation check proved nothing" >&2; rm -f "$$log"; exit 1; }; \
	  rm -f "$$log"; \
	done
	$(MAKE) --no-print-directory guest-test
	@# The launcher's own checks (exit statuses, timeout, reboot, read-only) against our daemon.
	./vm-images/selftest.sh --daemon "$$(swift build --show-bin-path)/vhost-user-blk"
	$(MAKE) --no-print-directory sanitize

# The guests alone: every QEMU build (or those VHOST_USER_QEMU_BUILDS names, comma-separated).
guest-test: build guest qemu
	swift build --build-tests
	$(call beside,$(call test_binaries,) swift test --skip-build --ignore-lock --filter '$(WAITING_GUEST_TESTS)' $(SWIFT_TEST_FLAGS),\
	  $(call test_binaries,) swift test --skip-build --ignore-lock --filter '$(GUEST_SUITES)' --skip '$(WAITING_GUEST_TESTS)' $(SWIFT_TEST_FLAGS))

# The suite again under AddressSanitizer (+ LeakSanitizer) and ThreadSanitizer, each in its own
# build directory; the sanitized daemon binary serves the QEMU guests (the newest QEMU build: the
# matrix is the plain run's). Any report fails the run. (The allocation checks are left out:
# the sanitizers replace malloc.)
SANITIZERS ?= address thread
SANITIZED_QEMU_BUILDS ?= debian13-backports
# Left to the plain run, so make test stays within its 30 minutes: the qcow2 guest test per kind
# of image (ten guests for what the qcow2 unit tests and the sanitized libblkio test per kind
# already run through the daemon), and the migration guests (DirtyLogTests and TwoFrontEndTests
# run the same code, two connections on one device included, under both sanitizers).
SANITIZE_SKIPPED_GUEST_TESTS ?= guestUsesEachKindOfImage MigrationTests
# ThreadSanitizer also leaves what cannot race: the suites of single-threaded code (the IOMMU
# model's data structures, the protocol's parsers, the qcow2 layer's tests, which call it from
# one thread: two thirds of the TSan unit run), and the guest tests whose daemon-side threads do
# nothing the others do not (one queue, or the control plane alone; the libblkio client per kind
# of qcow2 image). AddressSanitizer runs them all.
TSAN_SKIPPED_SUITES ?= IOMMUModelTests VhostUserProtocolTests Qcow2Tests
TSAN_SKIPPED_GUEST_TESTS ?= readOnlyDiskRefusesWritesAndKeepsTheImage ringLargerThanTheDaemonAllowsFailsItsRequests \
	guestRebootKeepsServing driverUnboundAndReboundKeepsServing convertIntoAndOutOfTheDiskAndCompare \
	qemuImgBenchDrivesTheDaemon flushDiscardAndWriteZeroesReachTheImage largestQEMURingIsServedWithDefaults \
	discardAndWriteZeroesReachTheImage daemonServesANewQemuAfterTheFirstIsKilled \
	guestUsesAThrowawayOverlayOverACompressedBase libblkioWritesMatchQemusOwnQcow2Driver
sanitize: build guest qemu
	for sanitizer in $(SANITIZERS); do \
	  flags="--sanitize=$$sanitizer --scratch-path .build-$$sanitizer"; \
	  echo "== swift test --sanitize=$$sanitizer"; \
	  swift build --build-tests $$flags; \
	  skipped="$(foreach test,$(SANITIZE_SKIPPED_GUEST_TESTS),--skip $(test))"; unit=""; \
	  [ "$$sanitizer" != thread ] || skipped="$$skipped $(foreach test,$(TSAN_SKIPPED_GUEST_TESTS),--skip $(test))"; \
	  [ "$$sanitizer" != thread ] || unit="$(foreach suite,$(TSAN_SKIPPED_SUITES),--skip $(suite))"; \
	  export $(call test_binaries,$$flags) VHOST_USER_QEMU_BUILDS=$(SANITIZED_QEMU_BUILDS) \
	    LSAN_OPTIONS="suppressions=$(CURDIR)/.ci/lsan-suppressions.txt" \
	    TSAN_OPTIONS="suppressions=$(CURDIR)/.ci/tsan-suppressions.txt halt_on_error=1"; \
	  $(call beside,swift test --skip-build --ignore-lock $$flags --filter '$(SERIAL_SUITES)' $(SWIFT_TEST_FLAGS),\
	    swift test --skip-build --ignore-lock $$flags $(UNTRACED) --skip '$(GUEST_SUITES)' --skip '$(SERIAL_SUITES)' $$unit $(SWIFT_TEST_FLAGS)); \
	  $(call beside,swift test --skip-build --ignore-lock $$flags --filter '$(WAITING_GUEST_TESTS)' $$skipped $(SWIFT_TEST_FLAGS),\
	    swift test --skip-build --ignore-lock $$flags --filter '$(GUEST_SUITES)' --skip '$(WAITING_GUEST_TESTS)' $$skipped $(SWIFT_TEST_FLAGS)); \
	done

# Release builds of the daemon and the front end; issue 5's cases on both back ends, alternating,
# BENCH_REPETITIONS runs of BENCH_SECONDS each; medians and ratios into docs/benchmarks.md + SVG.
BENCH_REPETITIONS ?= 3
BENCH_SECONDS ?= 5
# The disk cases' image goes on the machine's disk (not tmpfs): /var/tmp.
BENCH_DISK_DIRECTORY ?= /var/tmp
bench: setup qemu
	swift build $(RELEASE_FLAGS) --product vhost-user-blk
	swift build $(RELEASE_FLAGS) --product vhost-user-blk-bench
	"$$(swift build $(RELEASE_FLAGS) --show-bin-path)/vhost-user-blk-bench" compare \
	  --daemon "$$(swift build $(RELEASE_FLAGS) --show-bin-path)/vhost-user-blk" \
	  --qemu-img "$(CURDIR)/vm-images/out/qemu/debian13-backports/bin/qemu-img" \
	  --disk-directory "$(BENCH_DISK_DIRECTORY)" --fio "$$(command -v fio)" \
	  --repetitions $(BENCH_REPETITIONS) --runtime $(BENCH_SECONDS) --write-doc docs/benchmarks.md

unit-test: build
	swift build --build-tests
	$(call test_binaries,) swift test --skip-build --skip EndToEndTests $(SWIFT_TEST_FLAGS)

clean:
	rm -rf .build vm-images/out
