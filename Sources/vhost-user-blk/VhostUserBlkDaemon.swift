#if canImport(Glibc)
import Glibc
#endif
import Logging
import NetworkStorage
import StorageIO
import VhostSystem
import VhostUserBackend
import VirtioBlk

/// The vhost-user-blk daemon: opens the disk, listens, drops privileges, serves until SIGINT
/// or SIGTERM. `main.swift` parses the command line (`DaemonOptions`) and calls `run`.
struct VhostUserBlkDaemon {
    let options: DaemonOptions

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

    /// Returns the process exit status.
    func run() -> Int32 {
        if options.printCapabilities {
            print(Self.capabilitiesJSON)
            return 0
        }
        let level = options.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "vhost-user-blk")
        Self.prepareSignals()
        let image: BlockImage
        do {
            if let rbdImage = options.rbdImage {
                let disk = try RBDDisk(name: rbdImage, configuration: options.cephConfiguration, identity: options.cephIdentity,
                                       requestTimeoutSeconds: options.rbdRequestTimeoutSeconds,
                                       readOnly: options.readOnly, logger: logger)
                image = try BlockImage(storage: disk, readOnly: options.readOnly)
            } else if let nbdURI = options.nbdURI {
                let disk = try NBDDisk(uri: nbdURI, reconnectTimeoutMilliseconds: options.nbdReconnectTimeoutSeconds * 1_000,
                                       requestTimeoutMilliseconds: options.nbdRequestTimeoutSeconds * 1_000,
                                       connectionsPerQueue: options.nbdConnections, logger: logger)
                image = try BlockImage(storage: disk, readOnly: options.readOnly)
            } else if let blockFile = options.blockFile {
                image = try BlockImage(path: blockFile, readOnly: options.readOnly, cache: options.cache, format: options.format,
                                       l2CacheBytes: options.l2CacheBytes.map { Int(clamping: $0) },
                                       ioDelayMicroseconds: options.ioDelayMicroseconds, logger: logger)
            } else {
                image = try BlockImage(nullSize: options.nullSize ?? 0, readOnly: options.readOnly,
                                       ioDelayMicroseconds: options.ioDelayMicroseconds)
            }
        } catch {
            logger.critical("\(error)")
            return 1
        }
        let engine: IOEngineKind
        if let forced = options.ioEngine {
            if let reason = IOEngineSelection.unavailability(of: forced) {
                logger.critical("--aio=\(forced) is not available here: \(reason)")
                return 1
            }
            engine = forced
        } else {
            engine = IOEngineSelection.preferred
            if engine != .ioUring {
                logger.warning("io_uring is not available; queues use a thread pool (--aio=\(engine))",
                               metadata: ["reason": "\(IOEngineSelection.unavailability(of: .ioUring) ?? "")"])
            }
        }
        let queues = options.numberOfQueues ?? VirtioBlkDevice.maximumQueues
        let device = VirtioBlkDevice(image: image, numberOfQueues: queues, maximumQueueSize: options.queueSize,
                                     serial: options.serial ?? Self.defaultSerial(for: image.path), ioEngine: engine,
                                     logger: logger)

        let listener: UnixSocket
        do {
            if let socketPath = options.socketPath {
                listener = try UnixSocket.listen(path: socketPath)
            } else {
                let inherited = options.inheritedDescriptor ?? -1
                guard fcntl(inherited, F_GETFD) >= 0 else {
                    logger.critical("--fd=\(inherited) is not an open descriptor")
                    return 1
                }
                listener = UnixSocket(adopting: OwnedFileDescriptor(adopting: inherited))
            }
        } catch {
            logger.critical("cannot listen: \(error)")
            return 1
        }

        let controlPlane = ControlPlane(
            listener: listener, socketPath: options.socketPath, device: device,
            polling: QueuePolling(maximumNanoseconds: UInt64(options.pollMicroseconds) * 1_000),
            limits: options.limits, maximumConnections: options.maximumConnections, logger: logger)

        // Everything privileged is done: the socket is bound, the image open, the loop made.
        var sandbox: Logger.Metadata = [:]
        if options.sandbox {
            DaemonSandbox.loadTimeZone()
            do {
                sandbox["mount-namespace"] = "\(try DaemonSandbox.isolateFileSystem(reconnectsByPath: options.nbdURI != nil))"
            } catch {
                logger.critical("cannot enter the sandbox's mount namespace: \(error)")
                return 1
            }
        }
        do {
            let holding = try Capabilities.dropAll()
            logger.info("capabilities dropped", metadata: ["holding": "\(holding)"])
        } catch {
            logger.critical("\(error)")
            return 1
        }
        if options.sandbox {
            do {
                if let rules = try DaemonSandbox.restrictSystemCalls(controlPlane: controlPlane, engine: engine,
                                                                        network: options.nbdURI != nil) {
                    sandbox["seccomp"] = "\(rules.count) calls allowed"
                } else {
                    sandbox["seccomp"] = "not installed: sanitizer build"
                }
            } catch {
                logger.critical("cannot install the sandbox's seccomp filter: \(error)")
                return 1
            }
            logger.notice("sandboxed", metadata: sandbox)
        }

        let notAFile = image.isNull || image.storage != nil
        var formatMetadata: Logger.Metadata = ["format": "\(notAFile ? "n/a" : options.format.description)"]
        if let disk = image.storage as? RBDDisk {
            formatMetadata["rbd"] = "\(disk.imageName), read-only \(disk.readOnly)"
            formatMetadata["rbd-request-timeout-s"] = "\(options.rbdRequestTimeoutSeconds)"
        }
        if let disk = image.storage as? NBDDisk {
            formatMetadata["nbd"] = "multi-conn \(disk.multiConnection), structured replies \(disk.structuredReplies), flush \(disk.capabilities.flush), trim \(disk.capabilities.discard), zero \(disk.capabilities.writeZeroes), read-only \(disk.readOnly)"
            formatMetadata["nbd-reconnect-timeout-s"] = "\(options.nbdReconnectTimeoutSeconds)"
            formatMetadata["nbd-request-timeout-s"] = "\(options.nbdRequestTimeoutSeconds)"
            formatMetadata["nbd-connections-per-queue"] = "\(disk.multiConnection ? disk.connectionsPerQueue : 1) (\(disk.multiConnection ? "own" : "one shared by all queues"))"
        }
        if let qcow2 = image.qcow2 {
            formatMetadata["qcow2"] = "version \(qcow2.version), \(qcow2.clusterSize)-byte clusters"
            formatMetadata["chain"] = "\(qcow2.chain.joined(separator: " <- "))"
        }
        logger.notice("serving", metadata: formatMetadata.merging([
            "image": "\(image.path)", "bytes": "\(image.size)", "read-only": "\(options.readOnly)",
            "queues": "\(queues)", "queue-size": "\(options.queueSize)", "poll-us": "\(options.pollMicroseconds)",
            "aio": "\(notAFile ? "n/a" : engine.description)", "cache": "\(notAFile ? "n/a" : options.cache.description)",
            "direct-io-alignment": "\(image.directAlignment.map { "memory \($0.memory), offset \($0.offset)" } ?? "n/a")",
            "max-connections": "\(options.maximumConnections)",
        ]) { _, new in new })
        controlPlane.run()
        if let disk = image.storage as? RBDDisk, !disk.close() {
            // librados' threads still wait for the cluster with the image open: the process
            // ends without running its libraries' destructors under them.
            logger.notice("stopped")
            _exit(0)
        }
        logger.notice("stopped")
        return 0
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
