#if canImport(Glibc)
import Glibc
#endif
import VhostSystem

/// A read or write of a `Qcow2Disk` carried out through the caller's I/O engine rather than on
/// the caller's thread: the request says which transfers to start (`Progress.start`), the
/// caller starts them all, in any order, and reports each one's result (`completed`) until
/// the request is finished. One per request slot, allocated once and reused; used by one
/// thread.
///
/// Reads: every run of the chain's files the range maps to is one transfer; zeroes are filled
/// at once; a compressed cluster of a read-only layer (a backing file) is read into staging
/// lent by the disk and decompressed when its transfer completes (or copied at once when it is
/// the cluster decompressed last). Writes: clusters written in place, and clusters allocated
/// at the end of the file when nothing has to be copied into them (they read as zeroes
/// before), in two phases:
/// 1. the data, and the refcounts of the clusters allocated (each in flight in the image's
///    table of allocations, `InFlightAllocation`, so that no other write allocates them again);
/// 2. once those are written, the L2 entries naming the new clusters.
/// The request finishes when its L2 entries are written: a FLUSH after it covers them.
///
/// L2 tables the range needs that are not cached are read first, the same way (`+Loading`).
///
/// What this does not handle, `start` declines (nil) and the caller serves synchronously
/// (`Qcow2Disk.read` / `write`): compressed clusters of the writable top image (a write may
/// free them while the read is in flight), copy-on-write (from a backing file, a compressed,
/// shared or preallocated cluster: a second write to the cluster would have to wait for the
/// copy), pieces O_DIRECT cannot take as they are, more than `maximumPieces` clusters. New L2
/// tables and refcount blocks are made synchronously while a write is planned (docs/qcow2.md).
public final class Qcow2Request {
    public enum Progress: Equatable, Sendable {
        /// Start `transfers[0..<count]`, then report each through `completed`.
        case start(count: Int)
        /// Transfers of this request are still under way.
        case waiting
        /// Done: 0, or the errno of the first transfer that failed.
        case finished(errno: Int32)
    }

    /// The most clusters one request handles here (each needs up to one data, one refcount and
    /// one L2 transfer).
    public static let maximumPieces = 32
    public static let transferCapacity = 2 * maximumPieces
    /// Iovecs: the caller's (its slot holds 128), split at most once per piece, and one per
    /// metadata transfer.
    static let vectorCapacity = 128 + maximumPieces + transferCapacity

    let disk: Qcow2Disk
    /// The transfers to start (valid after `.start`, until they complete).
    public let transfers: UnsafeMutableBufferPointer<Qcow2Transfer>
    let scratch: UnsafeMutablePointer<iovec>
    var scratchUsed = 0
    var transferCount = 0
    var outstanding = 0
    var failure: Int32 = 0

    enum Phase {
        case idle
        /// L2 tables the range needs being read (then the request is planned again).
        case loading
        case reading
        case writing
        case linking
    }
    var phase = Phase.idle

    /// A guest cluster this write lands in through an allocation in flight.
    struct Link {
        var guestCluster: UInt64
        var host: UInt64
        /// Its L2 table's offset (pinned) and the entry's index.
        var table: UInt64
        var entryIndex: Int
        /// Its refcount's write, in `refcountWrites`.
        var refcountWrite: Int
    }
    /// A refcount block (pinned) and the bytes of it this write rewrites.
    struct MetadataWrite {
        var offset: UInt64
        var bytes: Range<Int>
        var failed = false

        /// Widens the bytes written to cover `more` too (one write per table).
        mutating func include(_ more: Range<Int>) {
            bytes = min(bytes.lowerBound, more.lowerBound)..<max(bytes.upperBound, more.upperBound)
        }
    }
    var links: [Link] = []
    var refcountWrites: [MetadataWrite] = []
    var l2Writes: [MetadataWrite] = []
    /// For each transfer: the index of its refcount write (writes) or compressed piece (reads),
    /// or -1.
    var roles: [Int]

    /// A compressed cluster this read decompresses once its bytes are in.
    struct CompressedPiece {
        var staging: CompressedStaging
        var image: Qcow2Image
        var host: UInt64
        var byteCount: Int
        /// Where its bytes start in the staging's input.
        var inputOffset: Int
        var offsetInCluster: Int
        var length: Int
        /// Where its bytes go: this many bytes into the read's iovecs.
        var skipping: Int
        var failed = false
    }
    static let maximumCompressedPieces = 4
    var compressed: [CompressedPiece] = []
    /// An L2 table being read for this request, into staging lent by the disk.
    struct TableLoad {
        var image: Qcow2Image
        var offset: UInt64
        /// The cache's eviction count when the read was planned.
        var evictions: UInt64
        var staging: CompressedStaging
        var failed = false
    }
    static let maximumLoads = 4
    /// Rounds of table loads before the request is planned whatever the cache holds (tables
    /// evicted as fast as they are read are then loaded synchronously).
    static let maximumLoadRounds = 2
    var loads: [TableLoad] = []
    var missing: [UInt64] = []
    var loadRounds = 0
    /// L2 tables this request has read through the engine, over its life (tests).
    var tablesLoaded = 0
    enum Operation {
        case read
        case write
    }
    var operation = Operation.read
    /// What the request was started with (planned again after its tables are in).
    var arguments: (vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int)?

    /// Compressed clusters this request has read through the engine, over its life (tests).
    var compressedClustersRead = 0
    /// The read's iovecs, for the copies out of decompressed clusters.
    var readVectors: (base: UnsafeMutablePointer<iovec>, count: Int)?

    public init(disk: Qcow2Disk) {
        self.disk = disk
        scratch = .allocate(capacity: Self.vectorCapacity)
        transfers = .allocate(capacity: Self.transferCapacity)
        transfers.initialize(repeating: Qcow2Transfer(direction: .read, descriptor: -1, vectors: scratch, count: 0, offset: 0, length: 0))
        roles = Array(repeating: -1, count: Self.transferCapacity)
        links.reserveCapacity(Self.maximumPieces)
        refcountWrites.reserveCapacity(Self.maximumPieces)
        l2Writes.reserveCapacity(Self.maximumPieces)
        compressed.reserveCapacity(Self.maximumCompressedPieces)
        loads.reserveCapacity(Self.maximumLoads)
        missing.reserveCapacity(Self.maximumLoads)
    }

    deinit {
        scratch.deallocate()
        transfers.deallocate()  // Qcow2Transfer is trivial
    }

    /// Starts reading `length` bytes at guest `offset` into `count` iovecs (which stay valid
    /// until finished). Nil when the range needs the synchronous path (`Qcow2Disk.read`).
    public func startRead(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int) -> Progress? {
        guard phase == .idle, length > 0 else { return nil }
        reset()
        (operation, arguments, loadRounds) = (.read, (vectors, count, offset, length), 0)
        return loadOrPlan()
    }

    /// Starts writing `length` bytes from `count` iovecs at guest `offset`. Nil when the range
    /// needs the synchronous path (`Qcow2Disk.write`); then nothing was changed.
    public func startWrite(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int) -> Progress? {
        guard phase == .idle, !disk.readOnly, length > 0 else { return nil }
        reset()
        (operation, arguments, loadRounds) = (.write, (vectors, count, offset, length), 0)
        return loadOrPlan()
    }

    /// Reads the L2 tables the range needs through the engine when some are not cached (the
    /// request is planned when they are in); else plans it. Nil: the synchronous path.
    func loadOrPlan() -> Progress? {
        guard let arguments else { return nil }
        if loadRounds < Self.maximumLoadRounds, addLoads(offset: arguments.offset, length: arguments.length) {
            return begin(.loading)
        }
        switch operation {
        case .read:
            guard planRead(arguments.vectors, count: arguments.count, offset: arguments.offset, length: arguments.length) else {
                reset()  // gives back the staging borrowed
                return nil
            }
            readVectors = (arguments.vectors, arguments.count)
            return begin(.reading)
        case .write:
            let planned = disk.top.metadata.withLock { state -> Progress? in
                guard state.corruption == nil, state.file.isRegularFile,
                      canWriteAsynchronously(state, arguments.vectors, count: arguments.count, offset: arguments.offset,
                                             length: arguments.length) else { return nil }
                do throws(Qcow2Error) {
                    try plan(state, arguments.vectors, count: arguments.count, offset: arguments.offset, length: arguments.length)
                } catch {
                    abandon(state)
                    return .finished(errno: error.errno)
                }
                return .waiting
            }
            switch planned {
            case nil:
                reset()
                return nil
            case .finished(let error)?:
                reset()
                return .finished(errno: error)
            default:
                return begin(.writing)
            }
        }
    }

    /// Reports transfer `index`'s result: bytes moved, or a negative errno.
    public func completed(_ index: Int, result: Int32) -> Progress {
        guard phase != .idle, index >= 0, index < transferCount, outstanding > 0 else { return .waiting }
        var outcome = result
        let transfer = transfers[index]
        if result == -EAGAIN || result == -EINTR {
            outcome = finishSynchronously(transfer, done: 0)
        } else if result >= 0, Int(result) < transfer.length {
            outcome = finishSynchronously(transfer, done: Int(result))
        }
        if outcome < 0 {
            if failure == 0 { failure = -outcome }
            if roles[index] >= 0 {
                switch phase {
                case .loading: loads[roles[index]].failed = true
                case .reading: compressed[roles[index]].failed = true
                case .idle, .writing, .linking: refcountWrites[roles[index]].failed = true
                }
            }
        }
        outstanding -= 1
        guard outstanding == 0 else { return .waiting }
        switch phase {
        case .idle, .linking:
            return finish()
        case .loading:
            return installLoads()
        case .reading:
            decompressPieces()
            return finish()
        case .writing:
            return link()
        }
    }

    func begin(_ next: Phase) -> Progress {
        phase = next
        outstanding = transferCount
        return transferCount > 0 ? .start(count: transferCount) : finish()
    }

    /// Lets go of the allocations and tables; the request is idle again.
    func finish() -> Progress {
        let error = failure
        if !links.isEmpty || !refcountWrites.isEmpty {
            disk.top.metadata.withLock { state in abandon(state) }
        }
        reset()
        return .finished(errno: error)
    }

    func reset() {
        for piece in compressed { disk.giveBack(piece.staging) }
        compressed.removeAll(keepingCapacity: true)
        for load in loads { disk.giveBack(load.staging) }
        loads.removeAll(keepingCapacity: true)
        readVectors = nil
        arguments = nil
        phase = .idle
        transferCount = 0
        scratchUsed = 0
        outstanding = 0
        failure = 0
        links.removeAll(keepingCapacity: true)
        refcountWrites.removeAll(keepingCapacity: true)
        l2Writes.removeAll(keepingCapacity: true)
    }

    // MARK: Transfers

    /// Adds a data transfer of `length` bytes of the iovecs from `skipping` bytes in, joined to
    /// the previous one when it continues it. False when it does not fit or is misaligned.
    func addTransfer(_ direction: Qcow2Transfer.Direction, _ file: HostFile, at fileOffset: UInt64,
                             from vectors: UnsafeMutablePointer<iovec>, count: Int, skipping: Int, length: Int) -> Bool {
        let free = UnsafeMutableBufferPointer(start: scratch + scratchUsed, count: Self.vectorCapacity - scratchUsed)
        guard let used = IOVectors.slice(vectors, count: count, skipping: skipping, length: length, into: free),
              file.isAligned(scratch + scratchUsed, count: used, offset: fileOffset, length: length) else { return false }
        if transferCount > 0, roles[transferCount - 1] < 0 {
            let last = transfers[transferCount - 1]
            if last.direction == direction, last.descriptor == file.rawValue, last.offset + UInt64(last.length) == fileOffset,
               last.vectors + last.count == scratch + scratchUsed {
                transfers[transferCount - 1].count += used
                transfers[transferCount - 1].length += length
                scratchUsed += used
                return true
            }
        }
        guard transferCount < Self.transferCapacity else { return false }
        transfers[transferCount] = Qcow2Transfer(direction: direction, descriptor: file.rawValue, vectors: scratch + scratchUsed,
                                                 count: used, offset: fileOffset, length: length)
        roles[transferCount] = -1
        transferCount += 1
        scratchUsed += used
        return true
    }

    /// Adds the write of `bytes` of a pinned table at `offset` in the image file.
    func addMetadataTransfer(_ table: AlignedBuffer, at offset: UInt64, bytes: Range<Int>, role: Int) {
        guard transferCount < Self.transferCapacity, scratchUsed < Self.vectorCapacity else { return }
        scratch[scratchUsed] = iovec(iov_base: table.base + bytes.lowerBound, iov_len: bytes.count)
        transfers[transferCount] = Qcow2Transfer(direction: .write, descriptor: disk.top.file.rawValue, vectors: scratch + scratchUsed,
                                                 count: 1, offset: offset + UInt64(bytes.lowerBound), length: bytes.count)
        roles[transferCount] = role
        transferCount += 1
        scratchUsed += 1
    }

    /// The rest of a transfer the engine left short (or could not do without waiting), done on
    /// this thread. 0 or a negative errno.
    func finishSynchronously(_ transfer: Qcow2Transfer, done: Int) -> Int32 {
        let remaining = transfer.length - done
        guard remaining > 0 else { return 0 }
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: max(transfer.count, 1)) { slice -> Int32 in
            guard let used = IOVectors.slice(transfer.vectors, count: transfer.count, skipping: done, length: remaining, into: slice),
                  let base = slice.baseAddress else { return -EINVAL }
            let error = PositionedTransfer.run(transfer.descriptor, base, count: used, byteCount: remaining,
                                               offset: transfer.offset + UInt64(done), write: transfer.direction == .write,
                                               pastEnd: .zeroFill)
            return -error
        }
    }
}

extension Qcow2Error {
    /// The errno a request reports for this error.
    var errno: Int32 {
        if case .io(_, _, let number) = self { return number }
        return EIO
    }
}
