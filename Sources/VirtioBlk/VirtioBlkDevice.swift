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
        } else if let storage = image.storage {
            // A network disk: what its server does natively.
            if storage.capabilities.discard { features.insert(.discard) }
            if storage.capabilities.writeZeroes { features.insert(.writeZeroes) }
        } else {
            features.formUnion([.discard, .writeZeroes])
        }
        self.features = features
    }

    /// max_discard_seg and max_write_zeroes_seg: one for a network disk, whose queues take one
    /// range per request.
    public var maximumDiscardSegments: UInt32 {
        image.storage == nil ? BlockRequestLimits.maximumDiscardSegments : 1
    }

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
    /// that exceeds seg_max within that limit is still served. Its engine is the device's; a
    /// queue whose io_uring cannot be set up (the kernel's limits) uses synchronous I/O, logged.
    public func makeRequestHandler(queueIndex: Int, queueSize: Int, negotiatedFeatures: VirtioFeatures) -> any VirtqueueRequestHandler {
        let engine: any IOEngine
        do {
            // A network disk's requests go through its own queues: the engine is never used.
            engine = image.storage != nil ? SynchronousEngine(capacity: 1)
                : try IOEngineSelection.make(ioEngine, entries: queueSize, file: image.isNull ? nil : image.descriptor.rawValue)
        } catch {
            logger.error("the queue's I/O engine cannot start; it uses synchronous I/O",
                         metadata: ["queue": "\(queueIndex)", "aio": "\(ioEngine)", "error": "\(error)"])
            engine = SynchronousEngine(capacity: queueSize)
        }
        return BlockRequestHandler(device: self, queueIndex: queueIndex, queueSize: queueSize,
                                   maximumSegments: max(queueSize, maximumChainLength), engine: engine)
    }
}
