#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import VhostSystem
import VhostUserBackend
import VirtioBlk

/// The vhost-user-blk daemon, following the "back-end program conventions" of QEMU's
/// docs/interop/vhost-user.rst (--socket-path, --fd, --print-capabilities, --blk-file, --read-only).
struct VhostUserBlkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vhost-user-blk",
        abstract: "Serve a disk image to a QEMU guest as a vhost-user-blk device.",
        discussion: """
            Example:
              vhost-user-blk --socket-path=/tmp/vhost-blk.sock --blk-file=disk.img --num-queues=4
              qemu-system-x86_64 ... -object memory-backend-memfd,id=mem,size=512M,share=on \\
                -numa node,memdev=mem -chardev socket,id=c0,path=/tmp/vhost-blk.sock \\
                -device vhost-user-blk-pci,chardev=c0,num-queues=4
            """)

    @Option(name: .customLong("socket-path"), help: "Listen on this Unix socket path.")
    var socketPath: String?

    @Option(name: .customLong("fd"), help: "Use this inherited, already listening Unix socket descriptor.")
    var inheritedDescriptor: Int32?

    @Flag(name: .customLong("print-capabilities"), help: "Print the back end's capabilities as JSON and exit.")
    var printCapabilities = false

    @Option(name: .customLong("blk-file"), help: "The disk image: a regular file or a block device.")
    var blockFile: String?

    @Option(name: .customLong("null-size"),
            help: "Instead of --blk-file: a null disk of this many bytes (4096, 64k, 1g) that stores nothing, for benchmarks.")
    var nullSize: String?

    @Flag(name: .customLong("read-only"), help: "Offer a read-only disk (VIRTIO_BLK_F_RO); writes fail.")
    var readOnly = false

    @Option(name: .customLong("num-queues"), help: "Maximum number of request queues (default: online CPUs).")
    var numberOfQueues: Int?

    @Option(name: .customLong("queue-size"),
            help: "Largest ring size accepted; seg_max is derived from it. Match QEMU's queue-size (default 128).")
    var queueSize: Int = 128

    @Option(name: .customLong("poll-us"),
            help: "Microseconds a queue keeps polling its ring after a batch before sleeping (adaptive; 0: off).")
    var pollMicroseconds: Int = 50

    @Option(name: .customLong("serial"), help: "Serial number returned by GET_ID (at most 20 bytes).")
    var serial: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "notice"

    /// The capability document of the spec's "back-end program conventions".
    static let capabilitiesJSON = """
        {
          "type": "block",
          "features": [
            "read-only",
            "blk-file"
          ]
        }
        """

    func validate() throws {
        if printCapabilities { return }
        if (socketPath == nil) == (inheritedDescriptor == nil) {
            throw ValidationError("exactly one of --socket-path and --fd is required")
        }
        if (blockFile == nil) == (nullSize == nil) {
            throw ValidationError("exactly one of --blk-file and --null-size is required")
        }
        if let nullSize, ByteSize.parse(nullSize) == nil {
            throw ValidationError("--null-size '\(nullSize)' is not a size (bytes, or with k, m, g, t)")
        }
        if let numberOfQueues, !(1...VirtioBlkDevice.maximumQueues).contains(numberOfQueues) {
            throw ValidationError("--num-queues must be between 1 and \(VirtioBlkDevice.maximumQueues)")
        }
        if !(2...VirtioBlkDevice.maximumQueueSize).contains(queueSize) || queueSize & (queueSize - 1) != 0 {
            throw ValidationError("--queue-size must be a power of two between 2 and \(VirtioBlkDevice.maximumQueueSize)")
        }
        if !(0...10_000).contains(pollMicroseconds) {
            throw ValidationError("--poll-us must be between 0 and 10000")
        }
        if let serial, serial.utf8.count > 20 {
            throw ValidationError("--serial is at most 20 bytes")
        }
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of: \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        if printCapabilities {
            print(Self.capabilitiesJSON)
            return
        }
        let level = Logger.Level(rawValue: logLevel) ?? .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "vhost-user-blk")
        Self.prepareSignals()
        let image: BlockImage
        do {
            if let blockFile {
                image = try BlockImage(path: blockFile, readOnly: readOnly)
            } else {
                image = try BlockImage(nullSize: nullSize.flatMap(ByteSize.parse) ?? 0, readOnly: readOnly)
            }
        } catch {
            logger.critical("\(error)")
            throw ExitCode.failure
        }
        let queues = numberOfQueues ?? max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), VirtioBlkDevice.maximumQueues))
        let device = VirtioBlkDevice(image: image, numberOfQueues: queues, queueSize: queueSize,
                                     serial: serial ?? Self.defaultSerial(for: image.path), logger: logger)

        let listener: UnixSocket
        do {
            if let socketPath {
                listener = try UnixSocket.listen(path: socketPath)
            } else {
                let inherited = inheritedDescriptor ?? -1
                guard fcntl(inherited, F_GETFD) >= 0 else {
                    logger.critical("--fd=\(inherited) is not an open descriptor")
                    throw ExitCode.failure
                }
                listener = UnixSocket(adopting: OwnedFileDescriptor(adopting: inherited))
            }
        } catch let error as SystemError {
            logger.critical("cannot listen: \(error)")
            throw ExitCode.failure
        }

        // Everything privileged is done: the socket is bound and the image is open.
        do {
            let holding = try Privileges.dropAll()
            logger.info("capabilities dropped", metadata: ["holding": "\(holding)"])
        } catch {
            logger.critical("\(error)")
            throw ExitCode.failure
        }

        logger.notice("serving", metadata: [
            "image": "\(image.path)", "bytes": "\(image.size)", "read-only": "\(readOnly)",
            "queues": "\(queues)", "queue-size": "\(queueSize)",
        ])
        let controlPlane = ControlPlane(listener: listener, socketPath: socketPath, device: device,
                                        polling: QueuePolling(maximumNanoseconds: UInt64(pollMicroseconds) * 1_000), logger: logger)
        controlPlane.run()
        logger.notice("stopped")
    }

    /// A parent may start us with signals blocked (posix_spawn keeps the spawning thread's mask):
    /// SIGINT and SIGTERM must reach GLib's handlers. A closed socket must give EPIPE, not kill us.
    static func prepareSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    /// The image's file name, cut to the 20 bytes GET_ID carries.
    static func defaultSerial(for path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        var bytes = Array(name.utf8.prefix(20))
        while String(validating: bytes, as: UTF8.self) == nil && !bytes.isEmpty { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
