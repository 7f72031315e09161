#if canImport(Glibc)
import Glibc
#endif

/// A disk's storage as the device sees it, below the request format: a size, what it can do,
/// and a queue per virtqueue through which requests go with the I/O engine's completion model
/// (queued with a tag, started by `submit`, their results reaped in any order). Files (raw and
/// qcow2, VirtioBlk's `FileStorage`) and network disks (NBD, RBD) implement it; what it answers
/// is whole: a request succeeds or fails, never short.
public protocol BlockStorage: AnyObject, Sendable {
    /// Bytes, a multiple of 512.
    var size: UInt64 { get }
    /// Writes, discards and zeroing are refused.
    var readOnly: Bool { get }
    var capabilities: BlockStorageCapabilities { get }
    /// What the start-up line names (a URI, pool/image).
    var name: String { get }
    /// The queue of one virtqueue, used only on that queue's thread from then on. `depth` is the
    /// most requests in flight (the ring's size); tags are below it. Nil when it cannot be set up
    /// (the reason logged): the queue's requests then fail.
    func makeQueue(index: Int, depth: Int) -> (any BlockStorageQueue)?
}

/// What a storage does natively; the device offers only these.
public struct BlockStorageCapabilities: Sendable, Equatable {
    /// FLUSH makes completed writes stable (false: they already are, FLUSH succeeds at once).
    public var flush: Bool
    /// Deallocation (virtio's DISCARD).
    public var discard: Bool
    /// Zeroing a range without sending zeroes (virtio's WRITE_ZEROES).
    public var writeZeroes: Bool
    /// Each write is stable when it completes (a file opened O_DSYNC): writethrough needs no
    /// flush after it, though FLUSH still does what `flush` says.
    public var writesAreStable: Bool

    public init(flush: Bool, discard: Bool, writeZeroes: Bool, writesAreStable: Bool = false) {
        self.flush = flush
        self.discard = discard
        self.writeZeroes = writeZeroes
        self.writesAreStable = writesAreStable
    }
}

/// What became of an operation handed to a `BlockStorageQueue`.
public enum BlockStorageStart: Equatable, Sendable {
    /// In flight: `reap` reports its result.
    case queued
    /// Done already (served at once, or refused): 0 or a negative errno. `reap` never reports it.
    case done(Int32)
}

/// One virtqueue's path to a storage, owned by that queue's thread.
///
/// Operations are started with a tag (each tag in flight at most once); an operation either is
/// done at once or completes exactly once later, reported by `reap` as 0 or a negative errno
/// (-EOPNOTSUPP: the storage does not do it). Queued operations start by `submit`. The vectors
/// (and the memory they point to) stay valid until the operation completes; the queue may
/// rewrite the vectors themselves (to continue a short transfer).
public protocol BlockStorageQueue: AnyObject {
    /// Readable when completions wait; nil when every operation is done at once.
    var completionNotifier: Int32? { get }
    /// Starts a read of `length` bytes at `offset` into `count` vectors.
    func read(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart
    /// Starts a write; as `read`.
    func write(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart
    /// Starts a flush: writes completed before it become stable.
    func flush(tag: UInt64) -> BlockStorageStart
    /// Starts a discard of `length` bytes at `offset`.
    func discard(offset: UInt64, length: UInt64, tag: UInt64) -> BlockStorageStart
    /// Starts zeroing `length` bytes at `offset`, deallocating them where `unmap` allows.
    func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool, tag: UInt64) -> BlockStorageStart
    /// Starts what was queued.
    func submit()
    /// Whether completions wait, without a system call.
    var hasCompletions: Bool { get }
    /// Moves the completions that wait into `completions` (as many as fit) and returns how many.
    func reap(into completions: IOCompletions) -> Int
    /// The caller is about to sleep on `completionNotifier`. True when completions already wait.
    func prepareToSleep() -> Bool
    /// What the queue's statistics line adds (name, value), said when the queue stops.
    var statistics: [(name: String, value: String)] { get }
}

extension BlockStorageQueue {
    public var statistics: [(name: String, value: String)] { [] }
}
