#if canImport(Glibc)
import Glibc
#endif
import Logging
import StorageIO
import Testing
import VhostSystem
import VhostUserBackend
import VhostUserFrontEnd
import VirtioCore
@testable import VirtioBlk

/// A virtio-blk device driven the way a queue worker drives it, on real memory and a real file:
///
/// - a temporary image file, every byte set to `BlockFixture.pattern(at:)` (never zero, so
///   zeroing and stray writes show);
/// - guest RAM in memfds (`GuestRAM`), written through the driver's mapping; the device sees
///   its own mapping of the same memfds (`deviceView()`), as the back end does;
/// - a driver queue (`DriverSplitQueue`) and a device queue (`SplitQueue`) on the same rings;
/// - the handler from `VirtioBlkDevice.makeRequestHandler`, the one the worker uses.
///
/// `serve()` is QueueWorker's batch loop without the threads: pop, handle, push used, and on a
/// `VirtqueueError` stop (the queue is then broken); then publish.
///
/// Guest-physical layout:
/// - region 0: 0x0 ..< 0x10_0000 (rings and indirect tables at the bottom, from the driver's
///   bump allocator; headers, statuses and data at the fixed addresses below)
/// - region 1: 0x10_0000 ..< 0x20_0000, adjacent to region 0 in guest-physical space but not
///   in the front end's virtual space, so a buffer across 0x10_0000 becomes two host pieces
/// - a gap 0x20_0000 ..< 0x100_0000
/// - region 2: 0x100_0000 ..< 0x101_0000, followed by nothing
final class BlockFixture {
    static let imageSectors = 2048
    static let imageSize = imageSectors * 512

    static let headerAddress: UInt64 = 0x4_0000
    static let statusAddress: UInt64 = 0x4_1000
    static let segmentsAddress: UInt64 = 0x4_2000
    static let dataAddress: UInt64 = 0x5_0000
    static let region1Start: UInt64 = 0x10_0000
    static let gapStart: UInt64 = 0x20_0000
    static let region2Start: UInt64 = 0x100_0000
    static let region2Size = 0x1_0000
    /// What the status byte holds before the device writes it.
    static let statusSentinel: UInt8 = 0xEE

    static let regions = [
        GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(0), size: 0x10_0000,
                            frontEndVirtualStart: FrontEndVirtualAddress(0x7f00_0000_0000)),
        GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(region1Start), size: 0x10_0000,
                            frontEndVirtualStart: FrontEndVirtualAddress(0x7f80_0000_0000)),
        GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(region2Start), size: region2Size,
                            frontEndVirtualStart: FrontEndVirtualAddress(0x7fc0_0000_0000)),
    ]

    let imagePath: String
    let image: BlockImage
    let device: VirtioBlkDevice
    let handler: BlockRequestHandler
    let ram: GuestRAM
    let memory: GuestMemory
    let driver: DriverSplitQueue
    var queue: SplitQueue
    /// Where the handler reports what it completed later, allocated once as the worker does.
    let completions: CompletedRequests

    /// - Parameters:
    ///   - readOnly: opens the image read-only (`BlockImage(readOnly: true)`), so the device
    ///     offers VIRTIO_BLK_F_RO.
    ///   - deviceQueueSize: the device's largest queue size (sizes the handler's iovec array).
    ///   - regions: guest RAM; the first region must hold the rings and the fixed addresses.
    ///   - storage: a storage of the test's own instead of the image file.
    init(queueSize: Int = 16, deviceQueueSize: Int? = nil, readOnly: Bool = false, serial: String = "vublk-test-serial",
         features: SplitQueue.Features = [.indirectDescriptors], regions: [GuestRAM.RegionSpec] = BlockFixture.regions,
         engine: IOEngineKind = IOEngineSelection.preferred, scripted: (any IOEngine)? = nil,
         cache: BlockCacheMode = .writeback, imageDirectory: String = "/tmp", storage: (any BlockStorage)? = nil) throws {
        imagePath = try Self.makeImageFile(directory: imageDirectory)
        do {
            image = try storage.map { try BlockImage(storage: $0, readOnly: readOnly) }
                ?? BlockImage(path: imagePath, readOnly: readOnly, cache: cache)
        } catch {
            unlink(imagePath)
            throw error
        }
        device = VirtioBlkDevice(image: image, numberOfQueues: 1, maximumQueueSize: deviceQueueSize ?? queueSize,
                                 serial: serial, ioEngine: engine,
                                 logger: Logger(label: "virtio-blk-tests") { _ in SwiftLogNoOpLogHandler() })
        if let scripted {
            handler = BlockRequestHandler(device: device, queueIndex: 0, queueSize: queueSize,
                                          maximumSegments: max(queueSize, device.maximumChainLength),
                                          storageQueue: FileStorageQueue(image: image, engine: scripted, depth: queueSize,
                                                                         pageCacheFirst: false))
        } else {
            handler = try #require(device.makeRequestHandler(queueIndex: 0, queueSize: queueSize, negotiatedFeatures: device.features)
                as? BlockRequestHandler)
        }
        ram = try GuestRAM(regions: regions)
        memory = try ram.deviceView()
        driver = try DriverSplitQueue(ram: ram, queueSize: queueSize)
        let addresses = driver.frontEndVirtualAddresses
        let layout = try SplitQueue.Layout.translate(queueSize: queueSize, descriptorTable: addresses.descriptorTable,
                                                     availableRing: addresses.availableRing, usedRing: addresses.usedRing,
                                                     memory: memory)
        // As QueueWorker starts it: chains may be as long as the device's largest queue.
        queue = SplitQueue(layout: layout, features: features, maximumChainLength: device.maximumChainLength)
        completions = CompletedRequests(capacity: queueSize)
    }

    deinit {
        unlink(imagePath)
    }

    /// The handler's path to the image file.
    var fileQueue: FileStorageQueue? { handler.storageQueue as? FileStorageQueue }

    // MARK: The image

    /// The byte the image holds at `offset` before any request: never zero.
    static func pattern(at offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (offset ^ (offset >> 9)) % 251) + 1
    }

    static func pattern(offset: Int, count: Int) -> [UInt8] {
        Array(initialImage[offset..<(offset + count)])
    }

    /// The whole image before any request, computed once (debug builds are slow at this).
    static let initialImage: [UInt8] = (0..<imageSize).map(pattern(at:))

    private static func makeImageFile(directory: String = "/tmp") throws -> String {
        var template = Array("\(directory)/vublk-device-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        defer { close(fd) }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let written = initialImage.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        if written != imageSize {
            unlink(path)
            try #require(written == imageSize)
        }
        return path
    }

    /// `count` bytes of the file at `offset`, read with pread on a descriptor of our own.
    func imageBytes(offset: Int, count: Int) -> [UInt8] {
        let fd = open(imagePath, O_RDONLY)
        defer { if fd >= 0 { close(fd) } }
        var bytes = [UInt8](repeating: 0, count: count)
        let read = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return read == count ? bytes : []
    }

    /// Whether the whole file still holds its initial pattern.
    var imageIsUnchanged: Bool {
        Self.sameBytes(imageBytes(offset: 0, count: Self.imageSize), Self.initialImage)
    }

    /// Whether the file is the pattern everywhere except `zeroed` (sector ranges), which read zero.
    func imageMatches(zeroedSectors zeroed: [Range<Int>]) -> Bool {
        var expected = Self.initialImage
        expected.withUnsafeMutableBytes { bytes in
            for range in zeroed {
                bytes[(range.lowerBound * 512)..<(range.upperBound * 512)].initializeMemory(as: UInt8.self, repeating: 0)
            }
        }
        return Self.sameBytes(imageBytes(offset: 0, count: Self.imageSize), expected)
    }

    /// Array equality with memcmp: element-wise comparison of megabytes is slow in debug builds.
    static func sameBytes(_ first: [UInt8], _ second: [UInt8]) -> Bool {
        first.count == second.count && first.withUnsafeBytes { a in
            second.withUnsafeBytes { b in
                guard let left = a.baseAddress, let right = b.baseAddress else { return true }
                return memcmp(left, right, a.count) == 0
            }
        }
    }

    // MARK: Guest memory

    /// Writes a request header (`le32 type; le32 reserved; le64 sector`) at `address` and returns
    /// its buffer (16 bytes unless `length` says otherwise).
    func header(_ type: UInt32, sector: UInt64 = 0, at address: UInt64 = BlockFixture.headerAddress,
                length: UInt32 = 16) throws -> (address: GuestPhysicalAddress, length: UInt32) {
        var bytes: [UInt8] = []
        bytes += withUnsafeBytes(of: type.littleEndian, Array.init)
        bytes += [0, 0, 0, 0]
        bytes += withUnsafeBytes(of: sector.littleEndian, Array.init)
        try ram.write(bytes, at: GuestPhysicalAddress(address))
        return (GuestPhysicalAddress(address), length)
    }

    /// A one-byte status buffer at `address`, preset to `statusSentinel`.
    func statusBuffer(at address: UInt64 = BlockFixture.statusAddress) throws -> (address: GuestPhysicalAddress, length: UInt32) {
        try ram.write([Self.statusSentinel], at: GuestPhysicalAddress(address))
        return (GuestPhysicalAddress(address), 1)
    }

    /// The status byte as the driver sees it.
    func status(at address: UInt64 = BlockFixture.statusAddress) throws -> UInt8 {
        try ram.read(1, at: GuestPhysicalAddress(address))[0]
    }

    /// A buffer of `length` bytes at `address`, filled with `fill`.
    func buffer(_ address: UInt64, _ length: UInt32, fill: UInt8 = 0) throws -> (address: GuestPhysicalAddress, length: UInt32) {
        try ram.fill(fill, at: GuestPhysicalAddress(address), length: Int(length))
        return (GuestPhysicalAddress(address), length)
    }

    /// Writes DISCARD / WRITE_ZEROES segments (`le64 sector; le32 num_sectors; le32 flags`) at
    /// `address` and returns the buffer holding them.
    func segments(_ segments: [(sector: UInt64, count: UInt32, flags: UInt32)],
                  at address: UInt64 = BlockFixture.segmentsAddress) throws -> (address: GuestPhysicalAddress, length: UInt32) {
        var bytes: [UInt8] = []
        for segment in segments {
            bytes += withUnsafeBytes(of: segment.sector.littleEndian, Array.init)
            bytes += withUnsafeBytes(of: segment.count.littleEndian, Array.init)
            bytes += withUnsafeBytes(of: segment.flags.littleEndian, Array.init)
        }
        try ram.write(bytes, at: GuestPhysicalAddress(address))
        return (GuestPhysicalAddress(address), UInt32(bytes.count))
    }

    // MARK: Requests

    /// Makes one chain available, serves the queue and returns the chain's used element.
    func submit(readable: [(address: GuestPhysicalAddress, length: UInt32)],
                writable: [(address: GuestPhysicalAddress, length: UInt32)] = [],
                indirect: Bool = false) throws -> DriverSplitQueue.UsedElement {
        try driver.addChain(readable: readable, writable: writable, indirect: indirect)
        driver.publish()
        if let error = serve() { throw error }
        let used = driver.takeUsed()
        try #require(used.count == 1)
        return used[0]
    }

    /// QueueWorker's batch: pops and submits chains until the ring is empty or broken, waits
    /// for the requests the engine completes later, then publishes. Returns the error that
    /// broke the queue, if any.
    @discardableResult
    func serve() -> VirtqueueError? {
        var served = 0
        var failure: VirtqueueError?
        do throws(VirtqueueError) {
            while let chain = try queue.popAvailable(memory: memory) {
                if case .completed(let written) = handler.submit(chain, token: RequestToken(head: chain.headIndex)) {
                    queue.pushUsed(head: chain.headIndex, writtenLength: written)
                }
                served += 1
            }
        } catch {
            failure = error
        }
        handler.submitQueued()
        while queue.outstandingCount > 0 {
            // As the worker: arm the notifier before sleeping on it, or reap what already waits.
            guard let notifier = handler.completionNotifier,
                  handler.prepareToSleep() || waitReadable(notifier, milliseconds: 10_000) else {
                Issue.record("\(queue.outstandingCount) requests never completed")
                break
            }
            completions.removeAll()
            handler.reapCompletions(into: completions)
            for index in 0..<completions.count {
                let (token, written) = completions.entry(index)
                queue.pushUsed(head: token.head, writtenLength: written)
            }
        }
        if served > 0 { queue.publishUsed() }
        return failure
    }
}

/// virtio-blk request types and status codes, as the driver writes and reads them.
enum Request {
    static let read: UInt32 = 0
    static let write: UInt32 = 1
    static let flush: UInt32 = 4
    static let getIdentifier: UInt32 = 8
    static let getLifetime: UInt32 = 10
    static let discard: UInt32 = 11
    static let writeZeroes: UInt32 = 13
}

enum Status {
    static let ok: UInt8 = 0
    static let ioError: UInt8 = 1
    static let unsupported: UInt8 = 2
}

func gpa(_ value: UInt64) -> GuestPhysicalAddress { GuestPhysicalAddress(value) }

/// Whether `fd` becomes readable within `milliseconds`.
func waitReadable(_ fd: Int32, milliseconds: Int32) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, milliseconds) == 1
}
