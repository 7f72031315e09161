#if canImport(Glibc)
import Glibc
#endif
import Logging
import Qcow2
import StorageIO
import VhostUserBackend
import VirtioCore
import VirtioSpec

/// Serves the virtio-blk requests of one queue, on that queue's worker thread.
///
/// Reads, writes and flushes go to the queue's I/O engine straight into (or from) the chain's
/// segments, no copy: with io_uring many are in flight and complete in any order
/// (`reapCompletions`); with synchronous I/O each completes in `submit`. GET_ID, DISCARD and
/// WRITE_ZEROES are served inline. Nothing is allocated per request: the iovec arrays, the
/// per-request state and the zero buffer are allocated once per queue.
final class BlockRequestHandler: VirtqueueRequestHandler {
    let device: VirtioBlkDevice
    let image: BlockImage
    let engine: any IOEngine
    private let queueIndex: Int
    /// Iovecs for requests served inline (chains too scattered for a slot's own array).
    let vectors: UnsafeMutablePointer<iovec>
    let vectorCapacity: Int
    /// Each descriptor head's transfer and its iovecs (`slotVectors` of them per head), and
    /// the guest memory its buffers are in, held until it completes.
    let transfers: UnsafeMutableBufferPointer<BlockTransfer>
    let transferVectors: UnsafeMutablePointer<iovec>
    var transferMemory: [GuestMemory?]
    let ioCompletions: IOCompletions
    /// qcow2 with an engine that completes asynchronously: each head's request
    /// (`BlockRequestHandler+Qcow2`), and the results of its transfers done at once.
    let qcow2Requests: [Qcow2Request]?
    let qcow2Results: UnsafeMutablePointer<(index: Int, result: Int32)>
    private let zeroes: UnsafeMutableRawBufferPointer
    /// With O_DIRECT: where requests whose buffers or offsets miss its alignment are staged
    /// (`bounceCapacity` bytes, aligned for O_DIRECT).
    let bounce: UnsafeMutableRawBufferPointer?
    /// The DISCARD / WRITE_ZEROES segments of the request being served, copied out of guest
    /// memory once (max_discard_seg of them).
    let segments: UnsafeMutablePointer<DiscardSegment>
    /// max_discard_seg as the device advertises it (`VirtioBlkDevice.maximumDiscardSegments`).
    let maximumDiscardSegments: UInt32
    /// The queue's path to a network disk; nil for files (and when it could not be set up,
    /// `storageUnavailable`: its requests fail).
    let storageQueue: (any BlockStorageQueue)?
    var storageUnavailable: Bool { image.storage != nil && storageQueue == nil }
    /// The GET_ID answer, built once: the serial NUL-padded to 20 bytes (20 bytes of storage).
    private let identifier: (UInt64, UInt64, UInt32)
    /// Readable by tests (`@testable`); only the handler changes it.
    var statistics = BlockRequestStatistics()

    /// How reads and writes through the page cache are tried before the engine.
    enum InlineTransfers {
        /// Never: O_DIRECT, or the synchronous engine.
        case never
        /// At once if that needs no waiting (RWF_NOWAIT: the data is in the page cache).
        case withoutWaiting
        /// Always at once: the file system has no RWF_NOWAIT for this direction (tmpfs, all in
        /// memory; ext4's buffered writes, which only copy into the page cache).
        case always
    }
    /// For reads and for writes.
    var inlineReads: InlineTransfers
    var inlineWrites: InlineTransfers

    /// Iovecs per in-flight request: a request whose data needs more is served inline.
    static let slotVectors = 128
    /// The bounce buffer's size: unaligned requests are staged through it in pieces this large.
    static let bounceCapacity = 1 << 20
    /// Resubmissions of one transfer after EAGAIN or EINTR before it fails.
    static let retryLimit = 1_000

    var vectorBuffer: UnsafeMutableBufferPointer<iovec> {
        UnsafeMutableBufferPointer(start: vectors, count: vectorCapacity)
    }

    /// - Parameter pageCacheFirst: try page-cache transfers at once before the engine (tests of
    ///   the engine's own path turn it off).
    init(device: VirtioBlkDevice, queueIndex: Int, queueSize: Int, maximumSegments: Int, engine: any IOEngine,
         pageCacheFirst: Bool = true) {
        self.device = device
        image = device.image
        self.queueIndex = queueIndex
        self.engine = engine
        inlineReads = pageCacheFirst && !device.image.cache.bypassesPageCache && engine.completionNotifier != nil
            ? .withoutWaiting : .never
        inlineWrites = inlineReads
        // A chain has at most queue-size descriptors and each may span a few memory regions.
        vectorCapacity = max(maximumSegments, 16) * 4
        vectors = .allocate(capacity: vectorCapacity)
        let slots = max(queueSize, 1)
        transfers = .allocate(capacity: slots)
        transfers.initialize(repeating: BlockTransfer())
        // Touched only where requests are in flight: large, but mostly never backed.
        transferVectors = .allocate(capacity: slots * Self.slotVectors)
        transferMemory = Array(repeating: nil, count: slots)
        ioCompletions = IOCompletions(capacity: slots)
        if let disk = device.image.qcow2, engine.completionNotifier != nil {
            qcow2Requests = (0..<slots).map { _ in Qcow2Request(disk: disk) }
        } else {
            qcow2Requests = nil
        }
        qcow2Results = .allocate(capacity: Qcow2Request.transferCapacity)
        zeroes = .allocate(byteCount: 64 * 1024, alignment: 4096)
        zeroes.initializeMemory(as: UInt8.self, repeating: 0)
        bounce = device.image.directAlignment.map {
            .allocate(byteCount: Self.bounceCapacity, alignment: max(4096, $0.memory))
        }
        maximumDiscardSegments = device.maximumDiscardSegments
        segments = .allocate(capacity: Int(maximumDiscardSegments))
        storageQueue = device.image.storage?.makeQueue(index: queueIndex, depth: slots)
        var identifier = (UInt64(0), UInt64(0), UInt32(0))
        withUnsafeMutableBytes(of: &identifier) { raw in
            for (index, byte) in device.serial.prefix(BlockRequestLimits.identifierByteCount).enumerated() { raw[index] = byte }
        }
        self.identifier = identifier
    }

    deinit {
        vectors.deallocate()
        transfers.deallocate()  // BlockTransfer is trivial
        transferVectors.deallocate()
        qcow2Results.deallocate()
        zeroes.deallocate()
        bounce?.deallocate()
        // DiscardSegment is trivial: nothing to deinitialize.
        segments.deallocate()
        device.logger.info("queue statistics", metadata: [
            "queue": "\(queueIndex)", "read": "\(statistics.reads)", "write": "\(statistics.writes)",
            "flush": "\(statistics.flushes)", "get-id": "\(statistics.identifiers)",
            "discard": "\(statistics.discards)", "write-zeroes": "\(statistics.writeZeroes)",
            "unsupported": "\(statistics.unsupported)", "errors": "\(statistics.errors)",
            "malformed": "\(statistics.malformed)", "aio": "\(engine.kind)",
            "qcow2-engine": "\(statistics.qcow2ThroughEngine)",
        ])
    }

    var completionNotifier: Int32? { storageQueue?.completionNotifier ?? engine.completionNotifier }

    func submitQueued() {
        if let storageQueue { storageQueue.submit() } else { engine.submit() }
    }

    var hasCompletions: Bool { storageQueue?.hasCompletions ?? engine.hasCompletions }

    func prepareToSleep() -> Bool { storageQueue?.prepareToSleep() ?? engine.prepareToSleep() }

    func submit(_ chain: DescriptorChain, token: RequestToken) -> RequestProgress {
        // The status byte is the last device-writable byte; without it nothing can be reported.
        guard chain.writableByteCount >= 1 else {
            statistics.malformed += 1
            return .completed(writtenLength: 0)
        }
        let statusOffset = chain.writableByteCount - 1
        var headerBytes = (UInt64(0), UInt64(0))
        let copied = withUnsafeMutableBytes(of: &headerBytes) { chain.copyReadableBytes(into: $0, from: 0) == BlockRequestHeader.byteCount }
        guard copied else {
            return .completed(writtenLength: finish(chain, status: .ioError, statusOffset: statusOffset, dataWritten: 0))
        }
        let header = withUnsafeBytes(of: &headerBytes) { BlockRequestHeader(copiedBytes: $0) }
        if image.storage != nil, header.type != .getIdentifier, header.type != nil {
            return startStorageRequest(header, chain, token: token, statusOffset: statusOffset)
        }
        let status: BlockRequestStatus
        var dataWritten = 0
        switch header.type {
        case .read:
            statistics.reads += 1
            if let progress = startTransfer(.read, chain, token: token, sector: header.sector, length: statusOffset) {
                return progress
            }
            status = read(chain, sector: header.sector, length: statusOffset)
            if status == .ok { dataWritten = statusOffset }
        case .write:
            statistics.writes += 1
            let length = chain.readableByteCount - BlockRequestHeader.byteCount
            if let progress = startTransfer(.write, chain, token: token, sector: header.sector, length: length) {
                return progress
            }
            status = write(chain, sector: header.sector, length: length)
        case .flush:
            statistics.flushes += 1
            if let progress = startTransfer(.flush, chain, token: token, sector: 0, length: 0) { return progress }
            status = image.flush() == 0 ? .ok : .ioError
        case .getIdentifier:
            statistics.identifiers += 1
            (status, dataWritten) = identify(chain, room: statusOffset)
        case .discard:
            statistics.discards += 1
            status = discardOrZero(chain, zeroing: false)
        case .writeZeroes:
            statistics.writeZeroes += 1
            status = discardOrZero(chain, zeroing: true)
        case nil:
            statistics.unsupported += 1
            status = .unsupported
        }
        return .completed(writtenLength: finish(chain, status: status, statusOffset: statusOffset, dataWritten: dataWritten))
    }

    /// IOERR in the status byte, no data moved; nothing written when the status byte is
    /// inaccessible.
    func fail(_ chain: DescriptorChain) -> UInt32 {
        guard chain.writableByteCount >= 1 else {
            statistics.malformed += 1
            return 0
        }
        return finish(chain, status: .ioError, statusOffset: chain.writableByteCount - 1, dataWritten: 0)
    }

    func finish(_ chain: DescriptorChain, status: BlockRequestStatus, statusOffset: Int, dataWritten: Int) -> UInt32 {
        if status == .ioError { statistics.errors += 1 }
        var byte = status.rawValue
        let written = withUnsafeBytes(of: &byte) { chain.copyToWritableBytes(from: $0, at: statusOffset) }
        guard written == 1 else { return 0 }
        return UInt32(clamping: dataWritten + 1)
    }

    /// The byte offset of a transfer of `length` bytes at `sector`, if it lies inside the disk.
    func byteOffset(sector: UInt64, length: Int) -> UInt64? {
        guard length % Int(BlockImage.sectorSize) == 0, length >= 0 else { return nil }
        let sectors = UInt64(length) / BlockImage.sectorSize
        guard sector <= image.sectorCount, image.sectorCount - sector >= sectors else { return nil }
        return sector * BlockImage.sectorSize
    }

    private func read(_ chain: DescriptorChain, sector: UInt64, length: Int) -> BlockRequestStatus {
        guard length > 0, let offset = byteOffset(sector: sector, length: length),
              let count = chain.fillIOVectors(.writable, offset: 0, length: length, into: vectorBuffer)
        else { return .ioError }
        // qcow2 stages what O_DIRECT cannot take itself (its offsets are not the disk's).
        if image.qcow2 == nil, !isDirectAligned(vectors, count: count, offset: offset, length: length) {
            return bounceRead(chain, offset: offset, length: length)
        }
        return image.read(vectors, count: count, byteCount: length, offset: offset) == 0 ? .ok : .ioError
    }

    private func write(_ chain: DescriptorChain, sector: UInt64, length: Int) -> BlockRequestStatus {
        guard !image.readOnly else { return .ioError }
        guard length > 0, let offset = byteOffset(sector: sector, length: length),
              let count = chain.fillIOVectors(.readable, offset: BlockRequestHeader.byteCount, length: length,
                                               into: vectorBuffer)
        else { return .ioError }
        let written = image.qcow2 != nil || isDirectAligned(vectors, count: count, offset: offset, length: length)
            ? image.write(vectors, count: count, byteCount: length, offset: offset) == 0
            : bounceWrite(chain, offset: offset, length: length) == .ok
        guard written else { return .ioError }
        // Writethrough mode: the write is stable before it completes.
        if writethroughNeedsSync, image.flush() != 0 { return .ioError }
        return .ok
    }

    /// Whether a write must be followed by an fdatasync: the driver chose writethrough, and
    /// the cache mode neither makes writes stable already nor ignores flushes.
    var writethroughNeedsSync: Bool {
        device.writeback.load(ordering: .relaxed) == 0 && !image.cache.writesAreStable && !image.cache.ignoresFlush
    }

    /// GET_ID: the serial, NUL-padded to 20 bytes (no NUL when it is exactly 20 long).
    private func identify(_ chain: DescriptorChain, room: Int) -> (BlockRequestStatus, Int) {
        let length = BlockRequestLimits.identifierByteCount
        guard room >= length else { return (.ioError, 0) }
        let copied = withUnsafeBytes(of: identifier) { chain.copyToWritableBytes(from: $0, at: 0) == length }
        return copied ? (.ok, length) : (.ioError, 0)
    }

    /// DISCARD and WRITE_ZEROES: 1...max_discard_seg segments after the header, each validated
    /// before any is executed so a bad request changes nothing.
    private func discardOrZero(_ chain: DescriptorChain, zeroing: Bool) -> BlockRequestStatus {
        let (count, refusal) = validateSegments(chain, zeroing: zeroing)
        if let refusal { return refusal }
        for index in 0..<count {
            let segment = segments[index]
            let length = Int(segment.sectorCount) * Int(BlockImage.sectorSize)
            // Our own copy, validated: the offset exists.
            guard length > 0, let offset = byteOffset(sector: segment.sector, length: length) else { continue }
            let result = zeroing
                ? image.writeZeroes(offset: offset, length: UInt64(length), unmap: segment.unmap,
                                    zeroes: UnsafeRawBufferPointer(zeroes))
                : image.discard(offset: offset, length: UInt64(length))
            guard result == 0 else { return .ioError }
        }
        return .ok
    }

    /// Copies the DISCARD / WRITE_ZEROES segments into `segments` and validates each: the count,
    /// or the status that refuses the request. Each segment is read from guest memory once: the
    /// guest can rewrite them while we work, and what we execute must be what we validated.
    func validateSegments(_ chain: DescriptorChain, zeroing: Bool) -> (count: Int, refusal: BlockRequestStatus?) {
        guard !image.readOnly else { return (0, .ioError) }
        let payload = chain.readableByteCount - BlockRequestHeader.byteCount
        guard payload > 0, payload % DiscardSegment.byteCount == 0 else { return (0, .ioError) }
        let count = payload / DiscardSegment.byteCount
        guard count <= Int(maximumDiscardSegments) else { return (0, .ioError) }
        for index in 0..<count {
            var raw = (UInt64(0), UInt64(0))
            let copied = withUnsafeMutableBytes(of: &raw) {
                chain.copyReadableBytes(into: $0, from: BlockRequestHeader.byteCount + index * DiscardSegment.byteCount)
                    == DiscardSegment.byteCount
            }
            guard copied else { return (0, .ioError) }
            let segment = withUnsafeBytes(of: &raw) { DiscardSegment(copiedBytes: $0) }
            // Unknown flags, and unmap on DISCARD, are UNSUPP (VIRTIO spec 5.2.6.2).
            guard segment.flags & ~DiscardSegment.unmapFlag == 0, zeroing || !segment.unmap else {
                return (0, .unsupported)
            }
            // Each segment within the advertised max_discard_sectors / max_write_zeroes_sectors.
            guard segment.sectorCount <= BlockRequestLimits.maximumSectorsPerSegment,
                  byteOffset(sector: segment.sector, length: Int(segment.sectorCount) * Int(BlockImage.sectorSize)) != nil
            else {
                return (0, .ioError)
            }
            // SAFETY: index < count <= maximumDiscardSegments, the buffer's capacity.
            segments[index] = segment
        }
        return (count, nil)
    }
}
