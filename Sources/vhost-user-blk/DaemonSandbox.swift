#if canImport(Glibc)
import Glibc
#endif
import Logging
import StorageIO
import VhostSystem
import VhostUserBackend

/// `--sandbox`: what the daemon confines itself to once the image is open, the socket listens
/// and the control plane exists (docs/security.md).
///
/// 1. As root (CAP_SYS_ADMIN), a private mount namespace whose root is an empty read-only
///    tmpfs: no path reaches a file any more.
/// 2. (Always, with or without `--sandbox`: every capability dropped, `Privileges`.)
/// 3. A seccomp allow-list of the calls the control plane and the queue workers make after
///    set-up; open/openat fail with EACCES; anything else kills the process. Not on it: exec,
///    socket creation, connect/bind/listen, ptrace, mount, kill, and everything else never needed.
///
/// An NBD disk opens connections after set-up (multi-conn's extra ones when a queue starts, and
/// reconnections): its daemon keeps the host's mount namespace (the server's Unix socket is
/// reached by its path) and may also create and connect sockets.
enum DaemonSandbox {
    /// The calls made after set-up: found by tracing the daemon (strace -f) through the guest,
    /// inflight, IOMMU, shutdown and benchmark tests; each group says who makes them.
    static let allowedCalls: [String] = [
        // Messages, replies, descriptors passed with them; back-end requests (IOTLB misses).
        "recvmsg", "sendmsg", "accept4", "shutdown", "setsockopt", "close", "fcntl", "fstat", "newfstatat",
        // Guest memory and the inflight export file.
        "mmap", "munmap", "madvise", "mprotect", "memfd_create", "ftruncate", "lseek",
        // Kicks, calls, error eventfds; the workers' epoll; GLib's main loop and wakeups.
        "read", "write", "eventfd2", "epoll_create1", "epoll_ctl", "epoll_pwait", "ppoll", "pipe2",
        // Block I/O.
        "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "fsync", "fdatasync", "fallocate", "ioctl",
        // Threads (queue workers), locks, time, memory allocation, signals, exit.
        "clone", "clone3", "set_robust_list", "rseq", "futex", "gettid", "getpid", "sched_yield",
        "brk", "mremap", "clock_gettime", "clock_nanosleep", "nanosleep", "getrandom", "sched_getaffinity",
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "prctl", "tgkill",
        "exit", "exit_group", "restart_syscall",
    ]

    /// The io_uring engine's calls (set-up per queue, submission and completion).
    static let ioUringCalls: [String] = ["io_uring_setup", "io_uring_enter", "io_uring_register"]

    /// An NBD disk's connections (libnbd): creating and connecting a socket, its options, and
    /// sending and receiving on it (recv and send are recvfrom and sendto); each queue's retry
    /// timer (a timerfd, made when the queue starts). No name is resolved: a sandboxed NBD
    /// server is named by its address or socket path (DaemonOptions).
    static let networkCalls: [String] = ["socket", "connect", "getsockopt", "getsockname", "getpeername",
                                         "recvfrom", "sendto", "timerfd_create", "timerfd_settime"]

    /// x86-64's older forms of calls that arm64 has only in their newer forms.
    static let legacyCalls: [String] = ["epoll_wait", "poll"]

    /// Before step 1: the log handler formats local time, and glibc reads the time zone file
    /// again on every call while TZ is unset (which the empty root or the filter would refuse).
    /// A TZ naming the file is read once and then remembered.
    static func loadTimeZone() {
        setenv("TZ", ":/etc/localtime", 0)
        tzset()
    }

    /// Step 1: as root, the empty mount namespace. - Returns: what was done, for the log.
    static func isolateFileSystem(reconnectsByPath: Bool) throws(SystemError) -> String {
        guard geteuid() == 0 else { return "none (not root)" }
        if reconnectsByPath { return "not entered: the NBD server is reached again by its socket path or address" }
        // A sanitizer runtime reads /proc at exit (LeakSanitizer) and for reports.
        if SeccompFilter.sanitizerRuntimeLinked { return "not entered: sanitizer build" }
        try MountNamespace.enterEmptyRoot()
        return "empty read-only root"
    }

    /// Step 3: the seccomp filter. - Returns: the rules installed; none in a sanitizer build,
    /// whose runtime needs ptrace, clone and exec for its reports and leak check (the tests'
    /// sanitizer runs; a release build never links one).
    static func restrictSystemCalls(controlPlane: ControlPlane, engine: IOEngineKind,
                                    network: Bool) throws(SystemError) -> [SeccompFilter.Rule]? {
        if SeccompFilter.sanitizerRuntimeLinked { return nil }
        var rules = allowedCalls.map(SeccompFilter.Rule.allow)
        if network { rules += networkCalls.map(SeccompFilter.Rule.allow) }
        if engine == .ioUring { rules += ioUringCalls.map(SeccompFilter.Rule.allow) }
        rules += legacyCalls.filter(SeccompFilter.knows).map(SeccompFilter.Rule.allow)
        // Opening a file fails (EACCES) rather than kills: glibc's malloc opens
        // /sys/devices/system/cpu/online once a process has more than eight arenas (a new
        // queue worker's first allocation, after enough rings came and went) and
        // /proc/sys/vm/overcommit_memory before shrinking a heap, and copes with failure.
        rules += ["openat", "open"].filter(SeccompFilter.knows).map { .fail($0, errno: UInt16(EACCES)) }
        if let directory = controlPlane.socketDirectoryDescriptor, let value = UInt64(exactly: directory) {
            // Removing the socket file on exit, relative to its directory, and nothing else.
            rules.append(.allow("unlinkat", whenFirstArgumentIs: value))
        }
        let filter = try SeccompFilter(allowing: rules)
        try filter.install()
        return rules
    }
}
