#if canImport(Glibc)
import Glibc
#endif

/// Positioned I/O on the calling thread: each operation runs when it is queued, and its result
/// waits for `reap`. One operation in flight; no io_uring, no threads.
public final class SynchronousEngine: IOEngine {
    private let done: IOCompletions

    /// - Parameter capacity: results held between reaps.
    public init(capacity: Int) {
        done = IOCompletions(capacity: capacity)
    }

    public var kind: IOEngineKind { .sync }
    public var completionNotifier: Int32? { nil }

    public func read(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        guard done.count < done.capacity else { return false }
        return done.append(tag: tag, result: Self.result(preadv(fd, vectors, Int32(truncatingIfNeeded: count), off_t(truncatingIfNeeded: offset))))
    }

    public func write(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        guard done.count < done.capacity else { return false }
        return done.append(tag: tag, result: Self.result(pwritev(fd, vectors, Int32(truncatingIfNeeded: count), off_t(truncatingIfNeeded: offset))))
    }

    public func synchronize(_ fd: Int32, tag: UInt64) -> Bool {
        guard done.count < done.capacity else { return false }
        return done.append(tag: tag, result: Self.result(fdatasync(fd) == 0 ? 0 : -1))
    }

    public func submit() {}

    public var hasCompletions: Bool { done.count > 0 }

    public func reap(into completions: IOCompletions) -> Int {
        var moved = 0
        for index in 0..<done.count {
            let (tag, result) = done[index]
            guard completions.append(tag: tag, result: result) else { break }
            moved += 1
        }
        // Whatever did not fit is kept, in order, for the next reap.
        for index in moved..<done.count {
            let (tag, result) = done[index]
            done.tags[index - moved] = tag
            done.results[index - moved] = result
        }
        done.setCount(done.count - moved)
        return moved
    }

    /// A syscall's answer as an engine result: bytes, or -errno (EINTR included: the caller
    /// resubmits, as after io_uring's -EINTR).
    private static func result(_ answer: Int) -> Int32 {
        answer >= 0 ? Int32(clamping: answer) : -errno
    }

    private static func result(_ answer: Int32) -> Int32 {
        answer >= 0 ? answer : -errno
    }
}
