import CNBD
import Logging
import StorageIO
import VhostSystem

/// A disk served by an NBD server (`--blk-nbd=URI`), through libnbd.
///
/// Opening connects once, within the connect timeout, to learn the export's size and flags; a
/// URI libnbd refuses, a server that is down and a refused handshake fail here with libnbd's
/// reason. Queues then share that connection, or, when the server offers multi-conn (every
/// connection sees the others' writes, a flush on one covers all), each queue after the first
/// opens its own.
public final class NBDDisk: BlockStorage {
    public let uri: String
    public let size: UInt64
    public let readOnly: Bool
    public let capabilities: BlockStorageCapabilities
    /// The server allows several connections to see one another's writes.
    public let multiConnection: Bool
    /// Structured replies were negotiated (reads answered in chunks, errors per chunk).
    public let structuredReplies: Bool
    let reconnectTimeoutMilliseconds: Int
    /// How long a request may go unanswered before its connection is dropped; 0: never.
    let requestTimeoutMilliseconds: Int
    /// Connections each queue opens when the server offers multi-conn (`--nbd-connections`).
    public let connectionsPerQueue: Int
    private let logger: Logger
    /// The connection opened at start: every queue's without multi-conn, the first queue's with it.
    private let firstConnection: NBDConnection
    private let firstConnectionInUse = Locked(false)

    /// How long a connection attempt at start may take.
    public static let connectTimeoutMilliseconds = 10_000
    /// How long a queue's extra connection (multi-conn) may take to open: the queue serves
    /// with fewer, so a server that hangs must not hold its start for long.
    static let extraConnectTimeoutMilliseconds = 2_000
    /// nbdcopy's default: nbdkit gives each connection 16 threads, so four let a queue of 32
    /// or more requests keep all of them at the server.
    public static let defaultConnectionsPerQueue = 4
    /// A queue's poller keeps its ready sockets in 32-bit masks.
    public static let maximumConnectionsPerQueue = 32

    public var name: String { uri }

    /// - Parameters:
    ///   - reconnectTimeoutMilliseconds: how long requests wait for a lost connection to come
    ///     back before they fail (`--nbd-reconnect-timeout`).
    ///   - requestTimeoutMilliseconds: how long a request may go unanswered before its
    ///     connection is taken for lost (`--nbd-request-timeout`; 0: never).
    ///   - connectionsPerQueue: with multi-conn, the connections each queue opens (1 to
    ///     `maximumConnectionsPerQueue`).
    public init(uri: String, reconnectTimeoutMilliseconds: Int, requestTimeoutMilliseconds: Int = 0,
                connectionsPerQueue: Int = defaultConnectionsPerQueue, logger: Logger) throws(NetworkStorageError) {
        self.uri = uri
        self.requestTimeoutMilliseconds = max(requestTimeoutMilliseconds, 0)
        self.connectionsPerQueue = min(max(connectionsPerQueue, 1), Self.maximumConnectionsPerQueue)
        self.reconnectTimeoutMilliseconds = reconnectTimeoutMilliseconds
        self.logger = logger
        let handle = try NBDHandle()
        try handle.connect(uri: uri, timeoutMilliseconds: Self.connectTimeoutMilliseconds)
        let exportSize = nbd_get_size(handle.raw)
        guard exportSize > 0, exportSize % 512 == 0 else { throw .unusableSize(name: uri, size: exportSize) }
        size = UInt64(exportSize)
        readOnly = nbd_is_read_only(handle.raw) == 1
        capabilities = BlockStorageCapabilities(flush: nbd_can_flush(handle.raw) == 1, discard: nbd_can_trim(handle.raw) == 1,
                                                writeZeroes: nbd_can_zero(handle.raw) == 1)
        multiConnection = nbd_can_multi_conn(handle.raw) == 1
        structuredReplies = nbd_get_structured_replies_negotiated(handle.raw) == 1
        firstConnection = NBDConnection(uri: uri, handle: handle, isShared: !multiConnection)
    }

    /// A queue's connections: the shared one without multi-conn; with it, `connectionsPerQueue`
    /// of its own (the first queue takes the one opened at start while no other holds it).
    /// Connections that cannot be opened now are left out; if none can, the queue starts with
    /// one that is down, and its requests wait for it like those of a lost connection. Nil only
    /// when the queue's poller cannot be set up.
    public func makeQueue(index: Int, depth: Int) -> (any BlockStorageQueue)? {
        var connections: [NBDConnection] = []
        var release: (@Sendable () -> Void)?
        if !multiConnection {
            connections = [firstConnection]
        } else {
            let takesFirst = firstConnectionInUse.withLock { inUse in
                defer { inUse = true }
                return !inUse
            }
            if takesFirst {
                connections.append(firstConnection)
                release = { [firstConnectionInUse] in firstConnectionInUse.withLock { $0 = false } }
            }
            while connections.count < connectionsPerQueue {
                do {
                    let opened = try NBDHandle()
                    try opened.connect(uri: uri, timeoutMilliseconds: Self.extraConnectTimeoutMilliseconds)
                    connections.append(NBDConnection(uri: uri, handle: opened, isShared: false))
                } catch {
                    logger.warning("a queue opens fewer NBD connections than asked", metadata: [
                        "queue": "\(index)", "connections": "\(connections.count)", "error": "\(error)"])
                    break
                }
            }
            if connections.isEmpty { connections = [NBDConnection(uri: uri, handle: nil, isShared: false)] }
        }
        do {
            return try NBDQueue(connections: connections, depth: depth, reconnectTimeoutMilliseconds: reconnectTimeoutMilliseconds,
                                requestTimeoutMilliseconds: requestTimeoutMilliseconds, logger: logger, release: release)
        } catch {
            release?()
            logger.error("a queue's NBD poller cannot be set up", metadata: ["queue": "\(index)", "error": "\(error)"])
            return nil
        }
    }
}
