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
/// Parses each request, validates it against the disk, and hands reads, writes, flushes,
/// discards and zeroing to the queue's `BlockStorageQueue` (a file's engine, an NBD
/// connection, librbd) straight into (or from) the chain's segments, no copy: many are in flight
/// and complete in any order (`reapCompletions`); what the storage does at once completes in
/// `submit`. The handler owns what every storage shares: the status byte, writethrough (a flush
/// after each write), DISCARD / WRITE_ZEROES segments one after another, and GET_ID. Nothing is
/// allocated per request: the iovec arrays, the per-request state and the segments are
/// allocated once per queue.
final class BlockRequestHandler: VirtqueueRequestHandler {
    let device: VirtioBlkDevice
    let image: BlockImage
    private let queueIndex: Int
    /// The queue's path to the disk's storage; nil when it could not be set up (the reason
    /// logged): every request but GET_ID then fails.
    let storageQueue: (any BlockStorageQueue)?
    let capabilities: BlockStorageCapabilities
    /// Iovecs of a request too scattered for its slot (many memory regions or IOMMU pages):
    /// one such request at a time, waited for in `submit`.
    let vectors: UnsafeMutablePointer<iovec>
    let vectorCapacity: Int
    /// Each descriptor head's request and its iovecs (`slotVectors` of them per head), and
    /// the guest memory its buffers are in, held until it completes.
    let transfers: UnsafeMutableBufferPointer<BlockTransfer>
    let transferVectors: UnsafeMutablePointer<iovec>
    var transferMemory: [GuestMemory?]
    /// Each head's DISCARD / WRITE_ZEROES segments (`maximumDiscardSegments` of them per head),
    /// copied out of guest memory once.
    let segments: UnsafeMutablePointer<DiscardSegment>
    /// max_discard_seg as the device advertises it (`VirtioBlkDevice.maximumDiscardSegments`).
    let maximumDiscardSegments: UInt32
    let ioCompletions: IOCompletions
    /// Completions reaped while a scattered request was waited for: reported at the next reap.
    let deferredCompletions: IOCompletions
    /// The GET_ID answer, built once: the serial NUL-padded to 20 bytes (20 bytes of storage).
    private let identifier: (UInt64, UInt64, UInt32)
    /// Readable by tests (`@testable`); only the handler changes it.
    var statistics = BlockRequestStatistics()

    /// Iovecs per in-flight request: a request whose data needs more is waited for (`vectors`).
    static let slotVectors = 128

    var vectorBuffer: UnsafeMutableBufferPointer<iovec> {
        UnsafeMutableBufferPointer(start: vectors, count: vectorCapacity)
    }

    /// - Parameter storageQueue: the queue's path to the disk's storage (nil: every request fails).
    init(device: VirtioBlkDevice, queueIndex: Int, queueSize: Int, maximumSegments: Int,
         storageQueue: (any BlockStorageQueue)?) {
        self.device = device
        image = device.image
        self.queueIndex = queueIndex
        self.storageQueue = storageQueue
        capabilities = device.storage.capabilities
        // A chain has at most queue-size descriptors and each may span a few memory regions.
        vectorCapacity = max(maximumSegments, 16) * 4
        vectors = .allocate(capacity: vectorCapacity)
        let slots = max(queueSize, 1)
        transfers = .allocate(capacity: slots)
        transfers.initialize(repeating: BlockTransfer())
        // Touched only where requests are in flight: large, but mostly never backed.
        transferVectors = .allocate(capacity: slots * Self.slotVectors)
        transferMemory = Array(repeating: nil, count: slots)
        maximumDiscardSegments = device.maximumDiscardSegments
        segments = .allocate(capacity: slots * Int(maximumDiscardSegments))
        ioCompletions = IOCompletions(capacity: slots)
        deferredCompletions = IOCompletions(capacity: slots)
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
        // DiscardSegment is trivial: nothing to deinitialize.
        segments.deallocate()
        var metadata: Logger.Metadata = [
            "queue": "\(queueIndex)", "read": "\(statistics.reads)", "write": "\(statistics.writes)",
            "flush": "\(statistics.flushes)", "get-id": "\(statistics.identifiers)",
            "discard": "\(statistics.discards)", "write-zeroes": "\(statistics.writeZeroes)",
            "unsupported": "\(statistics.unsupported)", "errors": "\(statistics.errors)",
            "malformed": "\(statistics.malformed)", "scattered": "\(statistics.scattered)",
        ]
        for (name, value) in storageQueue?.statistics ?? [] { metadata[name] = "\(value)" }
        device.logger.info("queue statistics", metadata: metadata)
    }

    var completionNotifier: Int32? { storageQueue?.completionNotifier }

    func submitQueued() { storageQueue?.submit() }

    var hasCompletions: Bool { deferredCompletions.count > 0 || storageQueue?.hasCompletions == true }

    func prepareToSleep() -> Bool { deferredCompletions.count > 0 || storageQueue?.prepareToSleep() == true }

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
        switch header.type {
        case .getIdentifier:
            statistics.identifiers += 1
            let (status, dataWritten) = identify(chain, room: statusOffset)
            return .completed(writtenLength: finish(chain, status: status, statusOffset: statusOffset, dataWritten: dataWritten))
        case nil:
            statistics.unsupported += 1
            return .completed(writtenLength: finish(chain, status: .unsupported, statusOffset: statusOffset, dataWritten: 0))
        case .read, .write, .flush, .discard, .writeZeroes:
            return startRequest(header, chain, token: token, statusOffset: statusOffset)
        }
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

    /// GET_ID: the serial, NUL-padded to 20 bytes (no NUL when it is exactly 20 long).
    private func identify(_ chain: DescriptorChain, room: Int) -> (BlockRequestStatus, Int) {
        let length = BlockRequestLimits.identifierByteCount
        guard room >= length else { return (.ioError, 0) }
        let copied = withUnsafeBytes(of: identifier) { chain.copyToWritableBytes(from: $0, at: 0) == length }
        return copied ? (.ok, length) : (.ioError, 0)
    }

    /// Copies the DISCARD / WRITE_ZEROES segments into `destination` (room for
    /// `maximumDiscardSegments`) and validates each, before any is executed so a bad request
    /// changes nothing: the count, or the status that refuses the request. Each segment is read
    /// from guest memory once: the guest can rewrite them while we work, and what we execute
    /// must be what we validated.
    func validateSegments(_ chain: DescriptorChain, zeroing: Bool,
                          into destination: UnsafeMutablePointer<DiscardSegment>) -> (count: Int, refusal: BlockRequestStatus?) {
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
            // SAFETY: index < count <= maximumDiscardSegments, the destination's capacity.
            destination[index] = segment
        }
        return (count, nil)
    }
}
