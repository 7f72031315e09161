#if canImport(Glibc)
import Glibc
#endif
import Logging
import NetworkStorage
import StorageIO
import VhostSystem
import VhostUserBackend
import VirtioBlk
import VirtioCore
import VirtioSpec

/// The daemon's command line, following the "back-end program conventions" of QEMU's
/// docs/interop/vhost-user.rst (--socket-path, --fd, --print-capabilities, --blk-file,
/// --read-only). Parsed by hand: swift-argument-parser pulled FoundationEssentials and its
/// reflection into the daemon, about 2 MiB of resident memory for eleven options.
struct DaemonOptions: Equatable {
    var socketPath: String?
    var inheritedDescriptor: Int32?
    var printCapabilities = false
    var help = false
    var blockFile: String?
    var nullSize: UInt64?
    /// `--blk-nbd`: an NBD URI.
    var nbdURI: String?
    /// `--blk-rbd`: POOL/IMAGE[@SNAPSHOT], and the cluster's configuration and our client name.
    var rbdImage: RBDImageName?
    var cephConfiguration: String?
    var cephIdentity: String?
    /// `--rbd-request-timeout` in seconds (0: none, librados retries for ever).
    var rbdRequestTimeoutSeconds = DaemonOptions.defaultRBDRequestTimeoutSeconds
    /// `--nbd-connections`: per queue, when the server offers multi-conn.
    var nbdConnections = NBDDisk.defaultConnectionsPerQueue
    /// `--nbd-reconnect-timeout` in seconds.
    var nbdReconnectTimeoutSeconds = DaemonOptions.defaultNBDReconnectTimeoutSeconds
    /// `--nbd-request-timeout` in seconds (0: none).
    var nbdRequestTimeoutSeconds = DaemonOptions.defaultNBDRequestTimeoutSeconds
    /// Options that apply to files only, as given (their defaults are not errors with a network disk).
    var fileOptionsGiven: [String] = []
    /// Options that apply to NBD exports only, and to RBD images only, as given.
    var nbdOptionsGiven: [String] = []
    var cephOptionsGiven: [String] = []
    var readOnly = false
    var numberOfQueues: Int?
    var queueSize = SplitRing.maximumQueueSize
    var pollMicroseconds = 50
    var ioDelayMicroseconds: UInt32 = 0
    /// `--aio`: nil chooses at start (io_uring where the kernel allows it).
    var ioEngine: IOEngineKind?
    var cache = BlockCacheMode.writeback
    var format = BlockImageFormat.raw
    /// `--l2-cache-size` in bytes; nil: QEMU's default (the whole disk's L2 tables, at most 32 MiB).
    var l2CacheBytes: UInt64?
    var serial: String?
    var sandbox = false
    var limits = ConnectionLimits()
    var maximumConnections = ControlPlane.defaultMaximumConnections
    var logLevel = Logger.Level.notice

    /// How long requests wait for a lost NBD server by default: long enough for a server's
    /// restart, short enough that the guest sees an error well before its own 30 s timeout.
    static let defaultNBDReconnectTimeoutSeconds = 10
    /// How long a request may go unanswered before its connection is taken for dead: Linux's
    /// NBD driver's default. A server that hangs but keeps the socket open (stopped, or behind
    /// a network that drops packets) would otherwise hold its requests for as long as TCP does.
    static let defaultNBDRequestTimeoutSeconds = 30
    /// How long librados may keep an RBD request (resending it as the cluster changes) before it
    /// fails: the NBD bounds together, so both kinds of disk give the guest an error, and let
    /// SIGTERM end the daemon, within the same time when the cluster is lost.
    static let defaultRBDRequestTimeoutSeconds = defaultNBDRequestTimeoutSeconds + defaultNBDReconnectTimeoutSeconds

    static let usage = """
        usage: vhost-user-blk (--socket-path=PATH | --fd=FD) (--blk-file=PATH | --null-size=SIZE | --blk-nbd=URI
                                                         | --blk-rbd=POOL/IMAGE[@SNAP]) [options]
               vhost-user-blk --print-capabilities

        Serve a disk image to a QEMU guest as a vhost-user-blk device.

        options:
          --socket-path=PATH      listen on this Unix socket path
          --fd=FD                 use this inherited, already listening Unix socket descriptor
          --print-capabilities    print the back end's capabilities as JSON and exit
          --blk-file=PATH         the disk image: a regular file or a block device
          --format=FORMAT          raw (default: the file is the disk) or qcow2 (with its
                                  backing chain); never guessed from the file's contents
          --l2-cache-size=SIZE    qcow2: bytes of L2 tables kept in memory (default: enough
                                  for the whole disk, at most 32m, as QEMU)
          --null-size=SIZE        instead of --blk-file: a null disk of SIZE bytes (4096, 64k, 1g)
                                  that stores nothing, for benchmarks
          --blk-nbd=URI           instead of --blk-file: an NBD export, nbd://HOST[:PORT]/EXPORT
                                  or nbd+unix:///EXPORT?socket=PATH (libnbd's URIs; one
                                  connection per queue when the server offers multi-conn)
          --blk-rbd=POOL/IMAGE[@SNAP]
                                  instead of --blk-file: a Ceph RBD image through librbd; a
                                  snapshot is served read-only
          --ceph-conf=PATH        the cluster's ceph.conf (default: librados' search,
                                  $CEPH_CONF or /etc/ceph/ceph.conf)
          --ceph-id=NAME          the client name without "client." (default: admin)
          --rbd-request-timeout=SECONDS
                                  how long a request may wait for the cluster (librados
                                  resends it meanwhile) before it fails with an I/O error
                                  (0-3600, 0: for ever; default 40)
          --nbd-connections=N     connections per queue when the server offers multi-conn
                                  (1-32, default 4); one shared connection otherwise
          --nbd-reconnect-timeout=SECONDS
                                  how long requests wait for a lost NBD server to come back
                                  before they fail with an I/O error (0-3600, default 10)
          --nbd-request-timeout=SECONDS
                                  a connection with a request unanswered this long is
                                  dropped and its requests sent again once reconnected
                                  (0: never; 0-3600, default 30)
          --read-only             offer a read-only disk (VIRTIO_BLK_F_RO); writes fail
          --num-queues=N          most request queues a front end may use (default 1024, the
                                  most a virtio-pci device has; QEMU asks for one per vCPU)
          --queue-size=N          largest ring size accepted, a power of two (default 32768,
                                  any split ring); a larger ring fails its requests
          --poll-us=N             microseconds a queue keeps polling its ring after a batch
                                  before sleeping (adaptive; 0: off; default 50)
          --cache=MODE            as QEMU's cache modes: writeback (default: host page cache,
                                  FLUSH is fdatasync), none (O_DIRECT, FLUSH is fdatasync),
                                  directsync (O_DIRECT and O_DSYNC: writethrough), unsafe
                                  (page cache, FLUSH ignored)
          --aio=ENGINE            io_uring (many requests in flight per queue), threads
                                  (4 I/O threads per queue) or sync (one at a time);
                                  default: io_uring when the kernel allows it, else
                                  threads (logged)
          --io-delay-us=N         fault injection for tests: every read and write waits N
                                  microseconds first, as slow storage would (default 0)
          --serial=TEXT           serial number returned by GET_ID (at most 20 bytes)
          --sandbox               after set-up, allow only the system calls serving needs
                                  (seccomp; others kill the daemon) and, as root, leave the
                                  file system for an empty private mount namespace
          --max-mem-regions=N     memory regions a front end may map (1-509, default 509)
          --max-iotlb-entries=N   IOTLB entries a front end may install (default 2048)
          --max-guest-memory=SIZE bytes of front-end memory mapped at once (default 1t)
          --max-connections=N     front ends served at once on the disk (1-64, default 2: a
                                  live migration's source and destination); more wait
          --log-level=LEVEL       trace, debug, info, notice, warning, error or critical
          -h, --help              show this help

        example:
          vhost-user-blk --socket-path=/tmp/vhost-blk.sock --blk-file=disk.img
          qemu-system-x86_64 ... -object memory-backend-memfd,id=mem,size=512M,share=on \\
            -numa node,memdev=mem -chardev socket,id=c0,path=/tmp/vhost-blk.sock \\
            -device vhost-user-blk-pci,chardev=c0
        """

    /// Parses `arguments` (without the program name): `--name=value` or `--name value`.
    static func parse(_ arguments: [String]) throws(UsageError) -> DaemonOptions {
        var options = DaemonOptions()
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            let name: String
            var inlineValue: String?
            if let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            } else {
                name = argument
            }
            func value() throws(UsageError) -> String {
                if let inlineValue { return inlineValue }
                guard let next = remaining.popFirst() else { throw UsageError("\(name) needs a value") }
                return next
            }
            func number<T: FixedWidthInteger>(_ type: T.Type) throws(UsageError) -> T {
                let text = try value()
                guard let parsed = T(text) else { throw UsageError("\(name) '\(text)' is not a number") }
                return parsed
            }
            func flag() throws(UsageError) {
                if inlineValue != nil { throw UsageError("\(name) takes no value") }
            }
            if ["--format", "--l2-cache-size", "--cache", "--aio", "--io-delay-us"].contains(name) {
                options.fileOptionsGiven.append(name)
            }
            if ["--nbd-connections", "--nbd-reconnect-timeout", "--nbd-request-timeout"].contains(name) {
                options.nbdOptionsGiven.append(name)
            }
            if ["--ceph-conf", "--ceph-id", "--rbd-request-timeout"].contains(name) {
                options.cephOptionsGiven.append(name)
            }
            switch name {
            case "--socket-path": options.socketPath = try value()
            case "--fd": options.inheritedDescriptor = try number(Int32.self)
            case "--print-capabilities": try flag(); options.printCapabilities = true
            case "--blk-file": options.blockFile = try value()
            case "--blk-nbd": options.nbdURI = try value()
            case "--blk-rbd":
                let text = try value()
                do {
                    options.rbdImage = try RBDImageName(parsing: text)
                } catch {
                    throw UsageError("--blk-rbd '\(text)' is not POOL/IMAGE or POOL/IMAGE@SNAPSHOT")
                }
            case "--ceph-conf": options.cephConfiguration = try value()
            case "--ceph-id": options.cephIdentity = try value()
            case "--rbd-request-timeout": options.rbdRequestTimeoutSeconds = try number(Int.self)
            case "--nbd-reconnect-timeout": options.nbdReconnectTimeoutSeconds = try number(Int.self)
            case "--nbd-connections": options.nbdConnections = try number(Int.self)
            case "--nbd-request-timeout": options.nbdRequestTimeoutSeconds = try number(Int.self)
            case "--null-size":
                let text = try value()
                guard let bytes = ByteSize.parse(text) else {
                    throw UsageError("--null-size '\(text)' is not a size (bytes, or with k, m, g, t)")
                }
                options.nullSize = bytes
            case "--format":
                let text = try value()
                guard let format = BlockImageFormat(rawValue: text) else {
                    throw UsageError("--format must be one of: \(BlockImageFormat.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                options.format = format
            case "--l2-cache-size":
                let text = try value()
                guard let bytes = ByteSize.parse(text), bytes > 0, bytes <= 1 << 40 else {
                    throw UsageError("--l2-cache-size '\(text)' is not a size between 1 and 1t (bytes, or with k, m, g, t)")
                }
                options.l2CacheBytes = bytes
            case "--read-only": try flag(); options.readOnly = true
            case "--num-queues": options.numberOfQueues = try number(Int.self)
            case "--queue-size": options.queueSize = try number(Int.self)
            case "--poll-us": options.pollMicroseconds = try number(Int.self)
            case "--io-delay-us": options.ioDelayMicroseconds = try number(UInt32.self)
            case "--cache":
                let text = try value()
                guard let mode = BlockCacheMode(rawValue: text) else {
                    throw UsageError("--cache must be one of: \(BlockCacheMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                options.cache = mode
            case "--aio":
                let text = try value()
                guard let kind = IOEngineKind(rawValue: text) else {
                    throw UsageError("--aio must be io_uring, threads or sync")
                }
                options.ioEngine = kind
            case "--serial": options.serial = try value()
            case "--sandbox": try flag(); options.sandbox = true
            case "--max-mem-regions": options.limits.memoryRegions = try number(Int.self)
            case "--max-iotlb-entries": options.limits.iotlbEntries = try number(Int.self)
            case "--max-connections": options.maximumConnections = try number(Int.self)
            case "--max-guest-memory":
                let text = try value()
                guard let bytes = ByteSize.parse(text) else {
                    throw UsageError("--max-guest-memory '\(text)' is not a size (bytes, or with k, m, g, t)")
                }
                options.limits.mappedBytes = bytes
            case "--log-level":
                let text = try value()
                guard let level = Logger.Level(rawValue: text) else {
                    throw UsageError("--log-level must be one of: \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                options.logLevel = level
            case "-h", "--help": options.help = true
            default: throw UsageError("unknown option '\(argument)'")
            }
        }
        if !options.help && !options.printCapabilities { try options.validate() }
        return options
    }

    private func validate() throws(UsageError) {
        if (socketPath == nil) == (inheritedDescriptor == nil) {
            throw UsageError("exactly one of --socket-path and --fd is required")
        }
        if [blockFile != nil, nullSize != nil, nbdURI != nil, rbdImage != nil].filter({ $0 }).count != 1 {
            throw UsageError("exactly one of --blk-file, --null-size, --blk-nbd and --blk-rbd is required")
        }
        let network = nbdURI != nil ? "--blk-nbd" : (rbdImage != nil ? "--blk-rbd" : nil)
        if let network, let given = fileOptionsGiven.first {
            throw UsageError("\(given) applies to --blk-file and --null-size, not to \(network)")
        }
        if nbdURI == nil, let given = nbdOptionsGiven.first {
            throw UsageError("\(given) applies to --blk-nbd")
        }
        if rbdImage == nil, let given = cephOptionsGiven.first {
            throw UsageError("\(given) applies to --blk-rbd")
        }
        if sandbox, rbdImage != nil {
            // librados' threads reconnect, renew cephx tickets and reread ceph.conf with calls
            // and files the sandbox takes away.
            throw UsageError("--sandbox does not work with --blk-rbd yet: librados needs the file system and calls it removes")
        }
        if sandbox, let nbdURI, nbdURI.lowercased().hasPrefix("nbds") {
            // A TLS reconnection reads its certificates or key file, which the sandbox refuses.
            throw UsageError("--sandbox does not work with TLS (nbds) URIs yet: reconnecting reads the key files it refuses")
        }
        if sandbox, let nbdURI, let host = Self.tcpHost(ofNBDURI: nbdURI), !Self.isNumericAddress(host) {
            // Resolving a name again reads /etc/hosts and friends, which the sandbox refuses.
            throw UsageError("--sandbox with --blk-nbd needs the server's address, not a name (\(host)): a reconnection could not resolve it inside the sandbox")
        }
        if !(1...NBDDisk.maximumConnectionsPerQueue).contains(nbdConnections) {
            throw UsageError("--nbd-connections must be between 1 and \(NBDDisk.maximumConnectionsPerQueue)")
        }
        if !(0...3600).contains(nbdReconnectTimeoutSeconds) {
            throw UsageError("--nbd-reconnect-timeout must be between 0 and 3600 seconds")
        }
        if !(0...3600).contains(nbdRequestTimeoutSeconds) {
            throw UsageError("--nbd-request-timeout must be between 0 and 3600 seconds")
        }
        if !(0...3600).contains(rbdRequestTimeoutSeconds) {
            throw UsageError("--rbd-request-timeout must be between 0 and 3600 seconds")
        }
        if nullSize != nil, format != .raw {
            throw UsageError("--format applies to --blk-file; a null disk has no format")
        }
        if l2CacheBytes != nil, format != .qcow2 {
            throw UsageError("--l2-cache-size applies to --format=qcow2")
        }
        if let numberOfQueues, !(1...VirtioBlkDevice.maximumQueues).contains(numberOfQueues) {
            throw UsageError("--num-queues must be between 1 and \(VirtioBlkDevice.maximumQueues)")
        }
        if queueSize < 2 || !SplitRing.isValidQueueSize(queueSize) {
            throw UsageError("--queue-size must be a power of two between 2 and \(SplitRing.maximumQueueSize)")
        }
        if !(0...10_000).contains(pollMicroseconds) {
            throw UsageError("--poll-us must be between 0 and 10000")
        }
        if ioDelayMicroseconds > 1_000_000 {
            throw UsageError("--io-delay-us must be at most 1000000")
        }
        if !(1...ConnectionLimits.maximumMemoryRegions).contains(limits.memoryRegions) {
            throw UsageError("--max-mem-regions must be between 1 and \(ConnectionLimits.maximumMemoryRegions)")
        }
        if !(1...1_000_000).contains(limits.iotlbEntries) {
            throw UsageError("--max-iotlb-entries must be between 1 and 1000000")
        }
        if !(1...ControlPlane.maximumConnectionsLimit).contains(maximumConnections) {
            throw UsageError("--max-connections must be between 1 and \(ControlPlane.maximumConnectionsLimit)")
        }
        if limits.mappedBytes == 0 {
            throw UsageError("--max-guest-memory must be more than 0")
        }
        if let serial, serial.utf8.count > 20 {
            throw UsageError("--serial is at most 20 bytes")
        }
    }

    /// The host of an `nbd://` URI (nil for Unix sockets and vsock), without port or brackets.
    static func tcpHost(ofNBDURI uri: String) -> String? {
        let lowered = uri.lowercased()
        guard lowered.hasPrefix("nbd://") || lowered.hasPrefix("nbds://") else { return nil }
        guard let separator = uri.firstRange(of: "://") else { return nil }
        let authority = uri[separator.upperBound...].prefix { $0 != "/" && $0 != "?" }
        if authority.hasPrefix("[") { return String(authority.dropFirst().prefix { $0 != "]" }) }
        return String(authority.prefix { $0 != ":" })
    }

    static func isNumericAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
