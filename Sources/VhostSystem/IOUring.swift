#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// One io_uring instance (liburing through the bridge), owned: torn down when the owner goes
/// away. Used by one thread. Operations are queued with a tag, submitted in a batch with
/// `submit`, and their completions copied out with `reap`; an eventfd registered with
/// `notify(on:)` becomes readable when completions arrive, for an epoll loop to watch.
///
/// Operation results are what the kernel answers: bytes transferred, or a negative errno.
public final class IOUring {
    private let ring: OpaquePointer
    /// The image's descriptor once registered (`registerFile`): operations then name it by
    /// index 0, which spares the kernel a file-table lookup per operation.
    private var registeredFile: Int32?

    /// - Parameter entries: submission queue size (a power of two is used by the kernel).
    public init(entries: Int) throws(SystemError) {
        var error: Int32 = 0
        guard let entries = UInt32(exactly: max(entries, 1)),
              let ring = cvb_uring_create(entries, &error) else {
            throw SystemError(call: "io_uring_queue_init", errno: error == 0 ? EINVAL : error)
        }
        self.ring = ring
    }

    deinit {
        cvb_uring_destroy(ring)
    }

    /// Completions signal `eventfd`.
    public func notify(on eventfd: EventFD) throws(SystemError) {
        let result = cvb_uring_register_eventfd(ring, eventfd.rawValue)
        if result < 0 { throw SystemError(call: "io_uring_register(EVENTFD)", errno: -result) }
    }

    /// Registers `descriptor` as the ring's one fixed file.
    public func registerFile(_ descriptor: Int32) throws(SystemError) {
        var fds = [descriptor]
        let result = cvb_uring_register_files(ring, &fds, 1)
        if result < 0 { throw SystemError(call: "io_uring_register(FILES)", errno: -result) }
        registeredFile = descriptor
    }

    /// Turns the eventfd's signal for new completions on or off (a flag in the completion ring,
    /// no system call). False when the kernel cannot (it then always signals).
    @discardableResult
    public func notifyCompletions(_ enabled: Bool) -> Bool {
        cvb_uring_notify_completions(ring, enabled ? 1 : 0) == 0
    }

    /// Free submission slots.
    public var spaceLeft: Int { Int(cvb_uring_space_left(ring)) }

    /// The descriptor argument for `fd`, and whether it is the fixed file.
    @inline(__always)
    private func target(_ fd: Int32) -> (Int32, Int32) {
        registeredFile == fd ? (0, 1) : (fd, 0)
    }

    /// Queues a readv of `count` vectors at `offset`; false when the submission queue is full.
    /// The vectors must stay valid until the operation completes.
    public func readv(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        let (file, fixed) = target(fd)
        return cvb_uring_prep_readv(ring, file, fixed, vectors, UInt32(truncatingIfNeeded: count), offset, tag) == 0
    }

    /// Queues a writev; as `readv`.
    public func writev(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        let (file, fixed) = target(fd)
        return cvb_uring_prep_writev(ring, file, fixed, vectors, UInt32(truncatingIfNeeded: count), offset, tag) == 0
    }

    /// Queues an fdatasync.
    public func fdatasync(_ fd: Int32, tag: UInt64) -> Bool {
        let (file, fixed) = target(fd)
        return cvb_uring_prep_fdatasync(ring, file, fixed, tag) == 0
    }

    /// Submits what was queued. Returns the number submitted; EINTR and EAGAIN (the kernel is
    /// short of resources: try again after reaping) answer 0.
    public func submit() throws(SystemError) -> Int {
        let result = cvb_uring_submit(ring)
        if result >= 0 { return Int(result) }
        if result == -EINTR || result == -EAGAIN || result == -EBUSY { return 0 }
        throw SystemError(call: "io_uring_enter", errno: -result)
    }

    /// Whether completions wait (no system call).
    public var hasCompletions: Bool { cvb_uring_ready(ring) > 0 }

    /// Copies up to `tags.count` completions into `tags` / `results` and returns how many.
    public func reap(tags: UnsafeMutableBufferPointer<UInt64>, results: UnsafeMutableBufferPointer<Int32>) -> Int {
        guard let tagBase = tags.baseAddress, let resultBase = results.baseAddress else { return 0 }
        return Int(cvb_uring_reap(ring, tagBase, resultBase, UInt32(truncatingIfNeeded: min(tags.count, results.count))))
    }
}
