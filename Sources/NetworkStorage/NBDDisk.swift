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
    private let logger: Logger
    /// The connection opened at start: every queue's without multi-conn, the first queue's with it.
    private let firstConnection: NBDConnection
    private let firstConnectionInUse = Locked(false)

    /// How long a connection attempt at start may take.
    public static let connectTimeoutMilliseconds = 10_000

    public var name: String { uri }

    /// - Parameter reconnectTimeoutMilliseconds: how long requests wait for a lost connection
    ///   to come back before they fail (`--nbd-reconnect-timeout`).
    public init(uri: String, reconnectTimeoutMilliseconds: Int, logger: Logger) throws(NetworkStorageError) {
        self.uri = uri
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

    /// A queue whose own connection cannot be opened now starts with none, and its requests wait
    /// for it like those of a lost connection. Nil only when the queue's poller cannot be set up.
    public func makeQueue(index: Int, depth: Int) -> (any BlockStorageQueue)? {
        let connection: NBDConnection
        var release: (@Sendable () -> Void)?
        let takesFirst = multiConnection && firstConnectionInUse.withLock { inUse in
            defer { inUse = true }
            return !inUse
        }
        if !multiConnection {
            connection = firstConnection
        } else if takesFirst {
            connection = firstConnection
            release = { [firstConnectionInUse] in firstConnectionInUse.withLock { $0 = false } }
        } else {
            var handle: NBDHandle?
            do {
                let opened = try NBDHandle()
                try opened.connect(uri: uri, timeoutMilliseconds: reconnectTimeoutMilliseconds)
                handle = opened
            } catch {
                logger.warning("a queue's NBD connection cannot open yet; its requests wait for it",
                               metadata: ["queue": "\(index)", "error": "\(error)"])
            }
            connection = NBDConnection(uri: uri, handle: handle, isShared: false)
        }
        do {
            return try NBDQueue(connection: connection, depth: depth, reconnectTimeoutMilliseconds: reconnectTimeoutMilliseconds,
                                logger: logger, release: release)
        } catch {
            release?()
            logger.error("a queue's NBD poller cannot be set up", metadata: ["queue": "\(index)", "error": "\(error)"])
            return nil
        }
    }
}
