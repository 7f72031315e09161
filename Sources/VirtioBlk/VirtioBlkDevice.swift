import Logging
import Synchronization
import VhostUserBackend
import VhostUserProtocol
import VirtioCore

/// The virtio-blk device: feature set, configuration space and per-queue request handlers over a
/// `BlockImage`.
public final class VirtioBlkDevice: VhostUserDevice {
    /// QEMU's vhost-user-blk accepts at most 1024-entry rings (VIRTQUEUE_MAX_SIZE).
    public static let maximumQueueSize = 1024
    /// VIRTIO_QUEUE_MAX in QEMU 7.2.
    public static let maximumQueues = 1024

    public let image: BlockImage
    public let numberOfQueues: Int
    public let maximumQueueSize: Int
    public let features: VirtioFeatures
    /// Up to 20 bytes answered to GET_ID.
    public let serial: [UInt8]
    let logger: Logger
    /// The driver's cache mode (the config space `writeback` byte): 1 writeback, 0 writethrough
    /// (every write is followed by fdatasync). Read per write request by the workers.
    let writeback = Atomic<UInt8>(1)

    public init(image: BlockImage, numberOfQueues: Int, queueSize: Int, serial: String, logger: Logger) {
        self.image = image
        self.numberOfQueues = numberOfQueues
        self.maximumQueueSize = queueSize
        self.serial = Array(serial.utf8.prefix(BlockRequestLimits.identifierByteCount))
        self.logger = logger
        var features: VirtioFeatures = [
            .version1, .indirectDescriptors, .eventIndex,
            .sizeMax, .segMax, .blockSize, .topology, .flush, .configWCE,
        ]
        if numberOfQueues > 1 { features.insert(.multiQueue) }
        if image.readOnly {
            features.insert(.readOnly)
        } else {
            features.formUnion([.discard, .writeZeroes])
        }
        self.features = features
    }

    public var configuration: BlockDeviceConfiguration {
        var configuration = BlockDeviceConfiguration(
            capacitySectors: image.sectorCount, queueSize: maximumQueueSize, numberOfQueues: numberOfQueues)
        configuration.writeback = writeback.load(ordering: .relaxed)
        return configuration
    }

    public func readConfiguration() -> [UInt8] {
        configuration.encoded()
    }

    /// Only the writeback byte is writable (VIRTIO_BLK_F_CONFIG_WCE).
    public func writeConfiguration(offset: Int, bytes: [UInt8]) -> Bool {
        guard offset == BlockDeviceConfiguration.writebackOffset, bytes.count == 1, bytes[0] <= 1 else {
            return false
        }
        writeback.store(bytes[0], ordering: .relaxed)
        logger.info("cache mode changed", metadata: ["writeback": "\(bytes[0])"])
        return true
    }

    public func reset() {
        writeback.store(1, ordering: .relaxed)
    }

    public func makeRequestHandler(queueIndex: Int, negotiatedFeatures: VirtioFeatures) -> any VirtqueueRequestHandler {
        BlockRequestHandler(device: self, queueIndex: queueIndex, maximumSegments: maximumQueueSize)
    }
}
