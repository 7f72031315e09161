import Logging
import StorageIO
import Synchronization
import VhostUserBackend
import VirtioSpec
import VirtioCore

/// The virtio-blk device: feature set, configuration space and per-queue request handlers over a
/// `BlockImage`.
public final class VirtioBlkDevice: VhostUserDevice {
    /// The most queues a virtio-pci front end asks for (VIRTIO_QUEUE_MAX in QEMU 7.2 to 11.1);
    /// QEMU's default is one per vCPU, so this is also the default offer.
    public static let maximumQueues = 1024

    public let image: BlockImage
    /// Where the disk's bytes are: the image's network storage, else its file.
    public let storage: any BlockStorage
    public let numberOfQueues: Int
    public let maximumQueueSize: Int
    public let features: VirtioFeatures
    /// Up to 20 bytes answered to GET_ID.
    public let serial: [UInt8]
    /// The I/O engine each queue uses (`--aio`), as chosen at start.
    public let ioEngine: IOEngineKind
    let logger: Logger
    /// The driver's cache mode (the config space `writeback` byte): 1 writeback, 0 writethrough
    /// (every write is followed by fdatasync unless the cache mode makes writes stable). Read
    /// per write request by the workers.
    let writeback = Atomic<UInt8>(1)

    /// - Parameter maximumQueueSize: the largest ring accepted (a power of two); by default the
    ///   largest a split ring can be.
    public init(image: BlockImage, numberOfQueues: Int, maximumQueueSize: Int = SplitRing.maximumQueueSize,
                serial: String, ioEngine: IOEngineKind = IOEngineSelection.preferred, logger: Logger) {
        self.image = image
        self.ioEngine = ioEngine
        self.numberOfQueues = numberOfQueues
        self.maximumQueueSize = maximumQueueSize
        self.serial = Array(serial.utf8.prefix(BlockRequestLimits.identifierByteCount))
        self.logger = logger
        storage = image.storage ?? FileStorage(image: image, engineKind: ioEngine, logger: logger)
        var features: VirtioFeatures = [
            .version1, .indirectDescriptors, .eventIndex,
            .sizeMax, .segMax, .blockSize, .topology, .flush,
        ]
        // The driver may switch between writeback and writethrough unless the host fixed
        // writethrough (--cache=directsync).
        if image.cache.driverMayToggleWriteback { features.insert(.configWCE) }
        writeback.store(image.cache.writebackAtReset, ordering: .relaxed)
        if numberOfQueues > 1 { features.insert(.multiQueue) }
        if image.readOnly {
            features.insert(.readOnly)
        } else {
            // What the storage does natively (a network disk: what its server offers).
            if storage.capabilities.discard { features.insert(.discard) }
            if storage.capabilities.writeZeroes { features.insert(.writeZeroes) }
        }
        self.features = features
    }

    /// max_discard_seg and max_write_zeroes_seg: the handler starts a request's segments one
    /// after another, so every storage takes as many.
    public var maximumDiscardSegments: UInt32 { BlockRequestLimits.maximumDiscardSegments }

    public var configuration: BlockDeviceConfiguration {
        var configuration = BlockDeviceConfiguration(
            capacitySectors: image.sectorCount, maximumQueueSize: maximumQueueSize, numberOfQueues: numberOfQueues)
        configuration.maximumDiscardSegments = maximumDiscardSegments
        configuration.maximumWriteZeroesSegments = maximumDiscardSegments
        configuration.writeback = writeback.load(ordering: .relaxed)
        return configuration
    }

    /// A request is a header, seg_max data descriptors and a status byte; Linux puts one that
    /// does not fit a small ring in a single indirect table.
    public var maximumChainLength: Int { Int(configuration.segmentMax) + 2 }

    public func readConfiguration() -> [UInt8] {
        configuration.encoded()
    }

    /// Only the writeback byte is writable (VIRTIO_BLK_F_CONFIG_WCE).
    public func writeConfiguration(offset: Int, bytes: [UInt8]) -> Bool {
        guard features.contains(.configWCE), offset == BlockDeviceConfiguration.writebackOffset,
              bytes.count == 1, bytes[0] <= 1 else {
            return false
        }
        writeback.store(bytes[0], ordering: .relaxed)
        logger.info("cache mode changed", metadata: ["writeback": "\(bytes[0])"])
        return true
    }

    public func reset() {
        writeback.store(image.cache.writebackAtReset, ordering: .relaxed)
    }

    /// The handler takes chains as long as its ring accepts (`SplitQueue`'s limit): a driver
    /// that exceeds seg_max within that limit is still served. Its requests go through the
    /// storage's queue for this virtqueue (a file's: the device's engine, or synchronous I/O
    /// where io_uring cannot be set up, logged).
    public func makeRequestHandler(queueIndex: Int, queueSize: Int, negotiatedFeatures: VirtioFeatures) -> any VirtqueueRequestHandler {
        BlockRequestHandler(device: self, queueIndex: queueIndex, queueSize: queueSize,
                            maximumSegments: max(queueSize, maximumChainLength),
                            storageQueue: storage.makeQueue(index: queueIndex, depth: queueSize))
    }
}
