#if canImport(Glibc)
import Glibc
#endif

/// Moves bytes between a file and memory for one queue, on that queue's thread: operations are
/// queued with a tag, started together by `submit`, and their results come back, in any order,
/// through `reap`. What a storage back end (a raw file today; qcow2 and network disks later)
/// builds its requests on.
///
/// An engine whose `completionNotifier` is nil completes every operation before `submit`
/// returns (synchronous I/O): the caller reaps right after submitting. Otherwise the notifier is
/// a descriptor for the caller's epoll, readable when completions wait.
///
/// Results are what the kernel answers: bytes transferred, or a negative errno. A short
/// transfer is reported as such; continuing it is the caller's business.
public protocol IOEngine: AnyObject {
    /// Which engine this is.
    var kind: IOEngineKind { get }
    /// Readable when completions wait; nil when `submit` completes everything.
    var completionNotifier: Int32? { get }
    /// Queues a read into `count` vectors at `offset`. The vectors (and the memory they point
    /// to) must stay valid until the operation completes. False when no more can be queued
    /// before the next `submit`.
    func read(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool
    /// Queues a write; as `read`.
    func write(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool
    /// Queues an fdatasync.
    func synchronize(_ fd: Int32, tag: UInt64) -> Bool
    /// Starts what was queued.
    func submit()
    /// Whether completions wait to be reaped, without a system call where the engine can tell.
    var hasCompletions: Bool { get }
    /// Moves the completions that wait into `completions` (as many as fit) and returns how many.
    func reap(into completions: IOCompletions) -> Int
    /// The caller is about to sleep on `completionNotifier`: make it signal the next
    /// completion. True when completions already wait (reap instead of sleeping). While the
    /// caller is awake the engine need not signal: reaping, or this, re-arms it.
    func prepareToSleep() -> Bool
}

extension IOEngine {
    public func prepareToSleep() -> Bool { hasCompletions }
}

/// The engines, as `--aio` names them.
public enum IOEngineKind: String, Sendable, CaseIterable, CustomStringConvertible {
    /// io_uring: many operations in flight, submitted and reaped in batches.
    case ioUring = "io_uring"
    /// Positioned I/O on a few threads per queue (`ThreadPoolEngine`): where io_uring is not
    /// available.
    case threads
    /// Positioned I/O on the queue's own thread: one operation at a time.
    case sync

    public var description: String { rawValue }
}
