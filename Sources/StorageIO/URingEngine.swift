#if canImport(Glibc)
import Glibc
#endif
import VhostSystem

/// io_uring: one ring per queue, its completions signalling an eventfd the queue's epoll
/// watches; the image registered as the ring's fixed file.
public final class URingEngine: IOEngine {
    private let ring: IOUring
    private let notifier: EventFD
    /// Whether the eventfd is signalled on completions: only while the queue's thread sleeps
    /// (or is about to), so a busy queue spends no eventfd write and no wakeup per completion.
    private var armed = true

    /// - Parameters:
    ///   - entries: operations the ring holds at once (a queue's ring size).
    ///   - file: the descriptor most operations use, registered when the kernel allows.
    public init(entries: Int, file: Int32?) throws(SystemError) {
        ring = try IOUring(entries: entries)
        notifier = try EventFD(nonBlocking: true)
        try ring.notify(on: notifier)
        // Registration only spares a lookup per operation; without it the plain fd works.
        if let file { try? ring.registerFile(file) }
    }

    public var kind: IOEngineKind { .ioUring }
    public var completionNotifier: Int32? { notifier.rawValue }

    public func read(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        ring.readv(fd, vectors, count: count, offset: offset, tag: tag)
    }

    public func write(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        ring.writev(fd, vectors, count: count, offset: offset, tag: tag)
    }

    public func synchronize(_ fd: Int32, tag: UInt64) -> Bool {
        ring.fdatasync(fd, tag: tag)
    }

    public func submit() {
        // A failed io_uring_enter leaves the operations queued: the next submit retries them.
        _ = try? ring.submit()
    }

    public var hasCompletions: Bool { ring.hasCompletions }

    public func reap(into completions: IOCompletions) -> Int {
        if armed {
            // Awake now: no more signals until the thread sleeps again; take the one that woke it.
            armed = !ring.notifyCompletions(false)
            _ = try? notifier.drain()
        }
        let free = completions.capacity - completions.count
        let reaped = ring.reap(tags: UnsafeMutableBufferPointer(rebasing: completions.tags[completions.count...]),
                               results: UnsafeMutableBufferPointer(rebasing: completions.results[completions.count...]))
        completions.setCount(completions.count + min(reaped, free))
        // Reaped only part of what waits: make sure the caller comes back.
        if ring.hasCompletions { try? notifier.signal() }
        return reaped
    }

    public func prepareToSleep() -> Bool {
        if !armed {
            armed = true
            ring.notifyCompletions(true)
        }
        // A completion posted before the flag was set did not signal: look once more.
        return ring.hasCompletions
    }
}
