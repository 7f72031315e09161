#if canImport(Glibc)
import Glibc
#endif
import Logging
import VhostSystem

/// The daemon's control plane: a GLib main loop (`MainLoop`) that accepts front ends on the
/// listening socket, serves up to `maximumConnections` of them at once on the one device, and
/// stops cleanly on SIGINT / SIGTERM. It never touches the data path; queue workers run on their
/// own threads.
///
/// Two front ends at once is a live migration on one host: the destination QEMU connects to the
/// same socket while the source still runs (docs/migration.md). Each connection has its own
/// memory table, rings and workers; the device, and so the disk, is shared: what one writes the
/// other reads, whatever the cache mode, because both go through the same open image.
public final class ControlPlane {
    /// Front ends served at once by default: a migration's source and destination.
    public static let defaultMaximumConnections = 2
    /// The most `--max-connections` accepts.
    public static let maximumConnectionsLimit = 64

    private let listener: UnixSocket
    private let socketPath: String?
    /// The socket file's directory, opened at start: the file is removed relative to it on exit,
    /// which works inside the sandbox (where no path reaches the file system any more).
    private let socketDirectory: OwnedFileDescriptor?
    private let device: any VhostUserDevice
    private let logger: Logger
    private let loop = MainLoop()
    private var listenerSource: MainLoop.Source?
    private var signalSources: [MainLoop.Source] = []
    /// The connections served now, by number, with the source watching each socket.
    private var connections: [Int: (connection: VhostUserConnection, source: MainLoop.Source?)] = [:]
    private let polling: QueuePolling
    private let limits: ConnectionLimits
    private let maximumConnections: Int
    /// Connections served so far (for logs and tests).
    public private(set) var connectionsServed = 0

    /// - Parameters:
    ///   - listener: a bound, listening socket (from --socket-path or inherited with --fd).
    ///   - socketPath: the file to remove on exit, if we created it.
    ///   - polling: how long queue workers poll their rings after a batch (`QueuePolling`).
    ///   - limits: what each front end may make the back end hold (`ConnectionLimits`).
    ///   - maximumConnections: front ends served at once; more wait in the listen backlog.
    public init(listener: UnixSocket, socketPath: String?, device: any VhostUserDevice, polling: QueuePolling = .off,
                limits: ConnectionLimits = ConnectionLimits(),
                maximumConnections: Int = ControlPlane.defaultMaximumConnections, logger: Logger) {
        self.listener = listener
        self.limits = limits
        self.polling = polling
        self.maximumConnections = max(1, maximumConnections)
        self.socketPath = socketPath
        socketDirectory = socketPath.flatMap { path in
            try? OwnedFileDescriptor.open(Self.directory(of: path), flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        self.device = device
        self.logger = logger
    }

    /// The descriptor the socket file is removed through (`unlinkat`), for the sandbox's rules.
    public var socketDirectoryDescriptor: Int32? { socketDirectory?.rawValue }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func fileName(of path: String) -> String {
        path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
    }

    /// Runs until SIGINT or SIGTERM, then closes the connection (stopping its workers) and
    /// removes the socket file.
    public func run() {
        for signal in [SIGINT, SIGTERM] {
            signalSources.append(loop.watchSignal(signal) { [unowned self] in
                logger.notice("signal received, shutting down once the requests in flight are answered (a second signal ends at once)")
                loop.quit()
            })
        }
        watchListener()
        logger.notice("waiting for a front end", metadata: socketPath.map { ["socket": "\($0)"] } ?? [:])
        loop.run()
        for source in signalSources { loop.remove(source) }
        signalSources = []
        // Requests in flight at a storage that does not answer hold what follows up to their
        // timeouts; another signal meanwhile ends the process at once. They are left to the
        // front end's inflight area, as when the daemon is killed.
        ExitOnSignal.arm(removing: socketPath.map { socketDirectory == nil ? $0 : Self.fileName(of: $0) },
                         in: socketDirectory?.rawValue,
                         message: "signal received again: ending now, without answering the requests in flight",
                         status: 1)
        for number in connections.keys.sorted() { closeConnection(number, reason: "daemon stopping") }
        if let listenerSource { loop.remove(listenerSource) }
        listenerSource = nil
        if let socketPath {
            ExitOnSignal.keepFile()
            if let socketDirectory {
                unlinkat(socketDirectory.rawValue, Self.fileName(of: socketPath), 0)
            } else {
                unlink(socketPath)
            }
        }
    }

    /// Stops the loop from another thread (tests).
    public func stop() {
        loop.quit()
    }

    private func watchListener() {
        listenerSource = loop.watch(listener.rawValue) { [unowned self] in acceptConnection() }
    }

    /// - Returns: whether to keep watching the listener (false once `maximumConnections` are
    /// served: the next front end waits in the backlog until one goes away).
    private func acceptConnection() -> Bool {
        let accepted: UnixSocket?
        do {
            accepted = try listener.accept()
        } catch {
            logger.error("accept failed", metadata: ["error": "\(error)"])
            return true
        }
        guard let accepted else { return true }
        do {
            // A front end that stalls mid-message, or stops reading its replies, must not wedge
            // the control plane (nor keep it from handling SIGTERM).
            try accepted.setReceiveTimeout(milliseconds: 5_000)
            try accepted.setSendTimeout(milliseconds: 5_000)
        } catch {
            logger.error("cannot set up the connection", metadata: ["error": "\(error)"])
            return true
        }
        connectionsServed += 1
        let number = connectionsServed
        var connectionLogger = logger
        connectionLogger[metadataKey: "connection"] = "\(number)"
        if connections.isEmpty {
            connectionLogger.notice("front end connected")
            // Power-on state for the first front end; one that joins another (a migration's
            // destination) finds the device as the guest left it.
            device.reset()
        } else {
            connectionLogger.notice("front end connected while another is served (a migration's destination?)",
                                    metadata: ["connections": "\(connections.count + 1)"])
        }
        let connection = VhostUserConnection(
            socket: accepted, device: device, polling: polling, limits: limits,
            othersConnected: { [unowned self] in connections.count > 1 }, logger: connectionLogger)
        connections[number] = (connection, nil)
        connections[number]?.source = loop.watch(accepted.rawValue) { [unowned self] in serveConnection(number) }
        guard connections.count < maximumConnections else {
            listenerSource = nil
            return false
        }
        return true
    }

    /// Handles one message of connection `number`. - Returns: whether to keep watching it.
    private func serveConnection(_ number: Int) -> Bool {
        guard let connection = connections[number]?.connection else { return false }
        switch connection.serveOneMessage() {
        case .keepServing:
            return true
        case .closed(let reason):
            connections[number]?.source = nil
            closeConnection(number, reason: reason)
            if listenerSource == nil { watchListener() }
            return false
        }
    }

    private func closeConnection(_ number: Int, reason: String) {
        guard let (connection, source) = connections.removeValue(forKey: number) else { return }
        if let source { loop.remove(source) }
        connection.close()
        logger.notice("front end disconnected", metadata: ["connection": "\(number)", "reason": "\(reason)"])
    }
}
