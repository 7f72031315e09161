import Logging
import StorageIO

/// A disk in a file (`BlockImage`: raw or qcow2, a block device, or the null disk) as a
/// `BlockStorage`: each queue moves its bytes through an I/O engine of its own
/// (`FileStorageQueue`), so the device serves files and network disks alike.
public final class FileStorage: BlockStorage {
    public let image: BlockImage
    /// The engine each queue asks for (`--aio`).
    public let engineKind: IOEngineKind
    let logger: Logger

    public init(image: BlockImage, engineKind: IOEngineKind, logger: Logger) {
        self.image = image
        self.engineKind = engineKind
        self.logger = logger
    }

    public var size: UInt64 { image.size }
    public var readOnly: Bool { image.readOnly }
    public var name: String { image.path }

    /// FLUSH is an fdatasync unless the cache mode ignores it (`unsafe`) or nothing is stored
    /// (the null disk); with O_DSYNC (`directsync`) each write is stable already.
    public var capabilities: BlockStorageCapabilities {
        BlockStorageCapabilities(flush: !image.isNull && !image.cache.ignoresFlush, discard: true, writeZeroes: true,
                                 writesAreStable: image.cache.writesAreStable)
    }

    /// A queue whose io_uring cannot be set up (the kernel's limits) uses synchronous I/O, logged.
    public func makeQueue(index: Int, depth: Int) -> (any BlockStorageQueue)? {
        let engine: any IOEngine
        do {
            engine = try IOEngineSelection.make(engineKind, entries: depth, file: image.isNull ? nil : image.descriptor.rawValue)
        } catch {
            logger.error("the queue's I/O engine cannot start; it uses synchronous I/O",
                         metadata: ["queue": "\(index)", "aio": "\(engineKind)", "error": "\(error)"])
            engine = SynchronousEngine(capacity: depth)
        }
        return FileStorageQueue(image: image, engine: engine, depth: depth)
    }
}
