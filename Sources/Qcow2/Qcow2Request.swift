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
/// the cluster decompressed last). Writes: clusters written in place, and clusters allocated at the end of the file
/// when nothing has to be copied into them (they read as zeroes before), in two phases:
/// 1. the data, and the refcounts of the clusters allocated (each in flight in the image's
///    table of allocations, `InFlightAllocation`, so that no other write allocates them again);
/// 2. once those are written, the L2 entries naming the new clusters.
/// The request finishes when its L2 entries are written: a FLUSH after it covers them.
///
/// What this does not handle, `start` declines (nil) and the caller serves synchronously
/// (`Qcow2Disk.read` / `write`): compressed clusters of the writable top image (a write may
/// free them while the read is in flight), copy-on-write (from a backing file, a
/// shared or a preallocated cluster), pieces O_DIRECT cannot take as they are, more than
/// `maximumPieces` clusters. L2 tables and refcount blocks that are not cached are loaded
/// synchronously, as new ones are made (docs/qcow2.md).
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
    private let scratch: UnsafeMutablePointer<iovec>
    private var scratchUsed = 0
    private var transferCount = 0
    private var outstanding = 0
    private var failure: Int32 = 0

    private enum Phase {
        case idle
        /// L2 tables the range needs being read (then the request is planned again).
        case loading
        case reading
        case writing
        case linking
    }
    private var phase = Phase.idle

    /// A guest cluster this write lands in through an allocation in flight.
    private struct Link {
        var guestCluster: UInt64
        var host: UInt64
        /// Its L2 table's offset (pinned) and the entry's index.
        var table: UInt64
        var entryIndex: Int
        /// Its refcount's write, in `refcountWrites`.
        var refcountWrite: Int
    }
    /// A refcount block (pinned) and the bytes of it this write rewrites.
    private struct MetadataWrite {
        var offset: UInt64
        var bytes: Range<Int>
        var failed = false
    }
    private var links: [Link] = []
    private var refcountWrites: [MetadataWrite] = []
    private var l2Writes: [MetadataWrite] = []
    /// For each transfer: the index of its refcount write (writes) or compressed piece (reads),
    /// or -1.
    private var roles: [Int]

    /// A compressed cluster this read decompresses once its bytes are in.
    private struct CompressedPiece {
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
    private var compressed: [CompressedPiece] = []
    /// An L2 table being read for this request, into staging lent by the disk.
    private struct TableLoad {
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
    private var loads: [TableLoad] = []
    private var missing: [UInt64] = []
    private var loadRounds = 0
    /// L2 tables this request has read through the engine, over its life (tests).
    private(set) var tablesLoaded = 0
    private enum Operation {
        case read
        case write
    }
    private var operation = Operation.read
    /// What the request was started with (planned again after its tables are in).
    private var arguments: (vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int)?

    /// Compressed clusters this request has read through the engine, over its life (tests).
    private(set) var compressedClustersRead = 0
    /// The read's iovecs, for the copies out of decompressed clusters.
    private var readVectors: (base: UnsafeMutablePointer<iovec>, count: Int)?

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
    private func loadOrPlan() -> Progress? {
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

    /// The L2 tables of the range not cached, each read into staging lent by the disk: the
    /// top image's for a write, every qcow2 layer's for a read. False when none is needed (or
    /// none can be read here: planning then loads them synchronously).
    private func addLoads(offset: UInt64, length: Int) -> Bool {
        for layer in disk.layers {
            guard case .qcow2(let image) = layer, offset < image.virtualSize else { continue }
            missing.removeAll(keepingCapacity: true)
            let evictions = image.metadata.withLock { state -> UInt64 in
                state.uncachedL2Tables(offset: offset, length: Int(min(UInt64(length), image.virtualSize - offset)), into: &missing,
                                       limit: Self.maximumLoads - loads.count)
                return state.l2Cache.evictions
            }
            let clusterSize = image.header.geometry.clusterSize
            for table in missing {
                guard transferCount < Self.transferCapacity, scratchUsed < Self.vectorCapacity,
                      let staging = disk.borrowStaging() else { break }
                loads.append(TableLoad(image: image, offset: table, evictions: evictions, staging: staging))
                scratch[scratchUsed] = iovec(iov_base: staging.input.base, iov_len: clusterSize)
                transfers[transferCount] = Qcow2Transfer(direction: .read, descriptor: image.file.rawValue,
                                                         vectors: scratch + scratchUsed, count: 1, offset: table, length: clusterSize)
                roles[transferCount] = loads.count - 1
                transferCount += 1
                scratchUsed += 1
                tablesLoaded += 1
            }
            if operation == .write { break }
        }
        return !loads.isEmpty
    }

    /// The tables are in: cached (unless a table left the cache meanwhile), and the request
    /// planned again; one that still cannot go through the engine is served here, synchronously.
    private func installLoads() -> Progress {
        for load in loads where !load.failed {
            // A table that does not validate is found again by the planning, which reports it.
            try? load.image.metadata.withLock { (state) throws(Qcow2Error) in
                try state.installL2Table(at: load.offset, from: load.staging.input.base, evictionsAtRead: load.evictions)
            }
            disk.giveBack(load.staging)
        }
        for load in loads where load.failed { disk.giveBack(load.staging) }
        loads.removeAll(keepingCapacity: true)
        (failure, transferCount, scratchUsed, phase) = (0, 0, 0, .idle)
        loadRounds += 1
        let saved = (operation, arguments)
        if let next = loadOrPlan() { return next }
        guard let arguments = saved.1 else { return .finished(errno: EIO) }
        let error = saved.0 == .write
            ? disk.write(arguments.vectors, count: arguments.count, offset: arguments.offset, length: arguments.length)
            : disk.read(arguments.vectors, count: arguments.count, offset: arguments.offset, length: arguments.length)
        reset()
        return .finished(errno: error)
    }

    private func planRead(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int) -> Bool {
        var done = 0
        while done < length {
            guard let (layer, extent) = try? disk.resolve(offset + UInt64(done), maximum: length - done, from: 0) else { return false }
            switch extent.kind {
            case .data(let host, _):
                let file = disk.layers[layer].file
                guard disk.layers[layer].holdsWholly(host: host, length: extent.length),
                      addTransfer(.read, file, at: host, from: vectors, count: count, skipping: done, length: extent.length)
                else { return false }
            case .zeroes, .unallocated:
                IOVectors.zero(vectors, count: count, skipping: done, length: extent.length)
            case .compressed(let host, let byteCount, let offsetInCluster):
                guard case .qcow2(let image) = disk.layers[layer], image.readOnly,
                      addCompressed(image, host: host, byteCount: byteCount, offsetInCluster: offsetInCluster,
                                    length: extent.length, into: vectors, count: count, skipping: done) else { return false }
            }
            done += extent.length
        }
        return true
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

    // MARK: Compressed clusters

    /// Copies the part of a compressed cluster a read wants when it was decompressed last, else
    /// adds the read of its bytes into staging. False when that cannot be done here.
    private func addCompressed(_ image: Qcow2Image, host: UInt64, byteCount: Int, offsetInCluster: Int, length: Int,
                               into vectors: UnsafeMutablePointer<iovec>, count: Int, skipping: Int) -> Bool {
        let cached = image.metadata.withLock { state in
            state.copyDecompressed(host: host, offsetInCluster: offsetInCluster, length: length, into: vectors, count: count,
                                   skipping: skipping)
        }
        if cached { return true }
        guard compressed.count < Self.maximumCompressedPieces, transferCount < Self.transferCapacity,
              scratchUsed < Self.vectorCapacity, let staging = disk.borrowStaging() else { return false }
        let alignment = UInt64(image.file.alignment)
        let start = host / alignment * alignment
        let end = (host + UInt64(byteCount) + alignment - 1) / alignment * alignment
        compressed.append(CompressedPiece(staging: staging, image: image, host: host, byteCount: byteCount,
                                          inputOffset: Int(host - start), offsetInCluster: offsetInCluster, length: length,
                                          skipping: skipping))
        guard end - start <= UInt64(staging.input.count) else { return false }
        scratch[scratchUsed] = iovec(iov_base: staging.input.base, iov_len: Int(end - start))
        transfers[transferCount] = Qcow2Transfer(direction: .read, descriptor: image.file.rawValue, vectors: scratch + scratchUsed,
                                                 count: 1, offset: start, length: Int(end - start))
        roles[transferCount] = compressed.count - 1
        transferCount += 1
        scratchUsed += 1
        compressedClustersRead += 1
        return true
    }

    /// The read's bytes are in: each compressed cluster decompressed, its part copied out, and
    /// kept as its image's cluster decompressed last.
    private func decompressPieces() {
        guard let target = readVectors else { return }
        for piece in compressed where !piece.failed {
            let clusterSize = piece.image.header.geometry.clusterSize
            let input = UnsafeRawBufferPointer(start: piece.staging.input.base + piece.inputOffset, count: piece.byteCount)
            let output = UnsafeMutableRawBufferPointer(start: piece.staging.output.base, count: clusterSize)
            guard Decompressing.cluster(piece.image.header.compressionType, input, into: output) else {
                if failure == 0 { failure = EIO }
                continue
            }
            IOVectors.copy(UnsafeRawPointer(piece.staging.output.base + piece.offsetInCluster), length: piece.length,
                           into: target.base, count: target.count, skipping: piece.skipping)
            piece.image.metadata.withLock { state in state.keepDecompressed(host: piece.host, piece.staging.output.base) }
        }
    }

    // MARK: Planning

    /// The first pass: every piece writable in place or allocatable without a copy, aligned as
    /// the file needs, and few enough. Changes nothing but L2 tables loaded or made (as the
    /// synchronous path would make them).
    private func canWriteAsynchronously(_ state: Qcow2Metadata, _ vectors: UnsafeMutablePointer<iovec>, count: Int,
                                        offset: UInt64, length: Int) -> Bool {
        let geometry = state.geometry
        var pieces = 0
        var vectorsNeeded = 0
        var done = 0
        while done < length {
            let position = offset + UInt64(done)
            let inCluster = geometry.offsetInCluster(position)
            let piece = min(length - done, geometry.clusterSize - inCluster)
            let guestCluster = position - UInt64(inCluster)
            pieces += 1
            guard pieces <= Self.maximumPieces else { return false }
            if state.inFlight[guestCluster] == nil {
                guard let (table, _, index) = try? state.l2TableForWriting(guestCluster) else { return false }
                let entry = UnsafeRawPointer(table.base).bigEndianUInt64(at: index * geometry.l2EntrySize)
                switch ClusterMapping.decode(entry, geometry: geometry, version: state.version) {
                case .data(_, copied: true)?, .zero(preallocated: nil)?: break
                case .unallocated? where !state.hasBacking: break
                default: return false
                }
            }
            // Within a host cluster only the offset in it matters for alignment.
            let free = UnsafeMutableBufferPointer(start: scratch, count: Self.vectorCapacity)
            guard let used = IOVectors.slice(vectors, count: count, skipping: done, length: piece, into: free),
                  state.file.isAligned(scratch, count: used, offset: UInt64(inCluster), length: piece) else { return false }
            vectorsNeeded += used
            done += piece
        }
        return vectorsNeeded + 2 * pieces <= Self.vectorCapacity
    }

    /// The second pass: allocations reserved (or joined), the data and refcount transfers built.
    private func plan(_ state: Qcow2Metadata, _ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64,
                      length: Int) throws(Qcow2Error) {
        let geometry = state.geometry
        let file = state.file
        var done = 0
        while done < length {
            let position = offset + UInt64(done)
            let inCluster = geometry.offsetInCluster(position)
            let piece = min(length - done, geometry.clusterSize - inCluster)
            let guestCluster = position - UInt64(inCluster)
            let (table, tableOffset, entryIndex) = try state.l2TableForWriting(guestCluster)
            let host: UInt64
            if var allocation = state.inFlight[guestCluster] {
                guard state.l2Cache.pin(tableOffset) else { throw state.corrupt("an L2 table left the cache while in use") }
                allocation.users += 1
                state.inFlight[guestCluster] = allocation
                host = allocation.host
                try addLink(state, guestCluster: guestCluster, host: host, table: tableOffset, entryIndex: entryIndex)
            } else {
                let entry = UnsafeRawPointer(table.base).bigEndianUInt64(at: entryIndex * geometry.l2EntrySize)
                if case .data(let existing, copied: true)? = ClusterMapping.decode(entry, geometry: geometry, version: state.version) {
                    host = existing
                } else {
                    guard state.l2Cache.pin(tableOffset) else { throw state.corrupt("an L2 table left the cache while in use") }
                    do {
                        host = try state.reserveCluster().host
                    } catch {
                        state.l2Cache.unpin(tableOffset)
                        throw error
                    }
                    state.inFlight[guestCluster] = InFlightAllocation(host: host)
                    try addLink(state, guestCluster: guestCluster, host: host, table: tableOffset, entryIndex: entryIndex)
                }
            }
            guard addTransfer(.write, file, at: host + UInt64(inCluster), from: vectors, count: count, skipping: done, length: piece)
            else { throw .io(path: state.path, call: "write", errno: EINVAL) }  // checked in the first pass
            done += piece
        }
        for (index, write) in refcountWrites.enumerated() {
            guard let block = state.refcountCache.lookup(write.offset) else { throw state.corrupt("a pinned refcount block left the cache") }
            addMetadataTransfer(block, at: write.offset, bytes: state.alignedRange(write.bytes, within: block.count), role: index)
        }
    }

    /// Records that this write lands in `host` for `guestCluster`, whose allocation it was
    /// counted a user of and whose L2 table it pinned: its refcount bytes to write (the block
    /// pinned too). On a throw the link is recorded already, so `abandon` undoes it.
    private func addLink(_ state: Qcow2Metadata, guestCluster: UInt64, host: UInt64, table: UInt64,
                         entryIndex: Int) throws(Qcow2Error) {
        links.append(Link(guestCluster: guestCluster, host: host, table: table, entryIndex: entryIndex, refcountWrite: -1))
        guard let location = state.refcountLocation(ofCluster: state.geometry.clusterIndex(host)) else {
            throw state.corrupt("no refcount block covers the cluster at 0x\(String(host, radix: 16)) being allocated")
        }
        let write: Int
        if let existing = refcountWrites.firstIndex(where: { $0.offset == location.block }) {
            let bytes = refcountWrites[existing].bytes
            refcountWrites[existing].bytes = min(bytes.lowerBound, location.bytes.lowerBound)..<max(bytes.upperBound, location.bytes.upperBound)
            write = existing
        } else {
            _ = try state.refcountBlock(at: location.block)
            guard state.refcountCache.pin(location.block) else { throw state.corrupt("a refcount block left the cache while in use") }
            refcountWrites.append(MetadataWrite(offset: location.block, bytes: location.bytes))
            write = refcountWrites.count - 1
        }
        links[links.count - 1].refcountWrite = write
    }

    // MARK: Phases

    /// Phase 2: the L2 entries of allocations whose refcount this request wrote, set (if no
    /// other write set them first) and written.
    private func link() -> Progress {
        transferCount = 0
        scratchUsed = 0  // the data transfers are done: their iovecs are free
        disk.top.metadata.withLock { state in
            let entrySize = state.geometry.l2EntrySize
            for link in links {
                guard link.refcountWrite >= 0, !refcountWrites[link.refcountWrite].failed else { continue }
                guard var allocation = state.inFlight[link.guestCluster], allocation.host == link.host,
                      let table = state.l2Cache.lookup(link.table) else { continue }
                if !allocation.linked {
                    table.base.storeBigEndian(link.host | ClusterMapping.copiedFlag, at: link.entryIndex * entrySize)
                    allocation.linked = true
                    state.inFlight[link.guestCluster] = allocation
                }
                let bytes = (link.entryIndex * entrySize)..<(link.entryIndex * entrySize + 8)
                if let existing = l2Writes.firstIndex(where: { $0.offset == link.table }) {
                    let merged = l2Writes[existing].bytes
                    l2Writes[existing].bytes = min(merged.lowerBound, bytes.lowerBound)..<max(merged.upperBound, bytes.upperBound)
                } else {
                    l2Writes.append(MetadataWrite(offset: link.table, bytes: bytes))
                }
            }
            for write in l2Writes {
                guard let table = state.l2Cache.lookup(write.offset) else { continue }
                addMetadataTransfer(table, at: write.offset, bytes: state.alignedRange(write.bytes, within: table.count), role: -1)
            }
        }
        return begin(.linking)
    }

    private func begin(_ next: Phase) -> Progress {
        phase = next
        outstanding = transferCount
        return transferCount > 0 ? .start(count: transferCount) : finish()
    }

    /// Lets go of the allocations and tables; the request is idle again.
    private func finish() -> Progress {
        let error = failure
        if !links.isEmpty || !refcountWrites.isEmpty {
            disk.top.metadata.withLock { state in abandon(state) }
        }
        reset()
        return .finished(errno: error)
    }

    /// Leaves each allocation joined (the last user removes it: one never linked leaves its
    /// cluster leaked, as a crash would) and unpins the tables.
    private func abandon(_ state: Qcow2Metadata) {
        for link in links {
            state.l2Cache.unpin(link.table)
            guard var allocation = state.inFlight[link.guestCluster], allocation.host == link.host else { continue }
            allocation.users -= 1
            state.inFlight[link.guestCluster] = allocation.users > 0 ? allocation : nil
        }
        for write in refcountWrites { state.refcountCache.unpin(write.offset) }
    }

    private func reset() {
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
    private func addTransfer(_ direction: Qcow2Transfer.Direction, _ file: HostFile, at fileOffset: UInt64,
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
    private func addMetadataTransfer(_ table: AlignedBuffer, at offset: UInt64, bytes: Range<Int>, role: Int) {
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
    private func finishSynchronously(_ transfer: Qcow2Transfer, done: Int) -> Int32 {
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
