#if canImport(Glibc)
import Glibc
#endif
import Logging
import VhostSystem

/// The daemon's control plane: a GLib main loop (`MainLoop`) that accepts front ends on the
/// listening socket, serves one connection at a time, and stops cleanly on SIGINT / SIGTERM.
/// It never touches the data path; queue workers run on their own threads.
public final class ControlPlane {
    private let listener: UnixSocket
    private let socketPath: String?
    /// The socket file's directory, opened at start: the file is removed relative to it on exit,
    /// which works inside the sandbox (where no path reaches the file system any more).
    private let socketDirectory: OwnedFileDescriptor?
    private let device: any VhostUserDevice
    private let logger: Logger
    private let loop = MainLoop()
    private var listenerSource: MainLoop.Source?
    private var connectionSource: MainLoop.Source?
    private var signalSources: [MainLoop.Source] = []
    private var connection: VhostUserConnection?
    private let polling: QueuePolling
    private let limits: ConnectionLimits
    /// Connections served so far (for logs and tests).
    public private(set) var connectionsServed = 0

    /// - Parameters:
    ///   - listener: a bound, listening socket (from --socket-path or inherited with --fd).
    ///   - socketPath: the file to remove on exit, if we created it.
    ///   - polling: how long queue workers poll their rings after a batch (`QueuePolling`).
    ///   - limits: what each front end may make the back end hold (`ConnectionLimits`).
    public init(listener: UnixSocket, socketPath: String?, device: any VhostUserDevice, polling: QueuePolling = .off,
                limits: ConnectionLimits = ConnectionLimits(), logger: Logger) {
        self.listener = listener
        self.limits = limits
        self.polling = polling
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
                logger.notice("signal received, shutting down")
                loop.quit()
            })
        }
        watchListener()
        logger.notice("waiting for a front end", metadata: socketPath.map { ["socket": "\($0)"] } ?? [:])
        loop.run()
        for source in signalSources { loop.remove(source) }
        signalSources = []
        closeConnection(reason: "daemon stopping")
        if let listenerSource { loop.remove(listenerSource) }
        listenerSource = nil
        if let socketPath {
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

    /// - Returns: whether to keep watching the listener (false while a connection is served).
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
        var connectionLogger = logger
        connectionLogger[metadataKey: "connection"] = "\(connectionsServed)"
        connectionLogger.notice("front end connected")
        device.reset()
        connection = VhostUserConnection(socket: accepted, device: device, polling: polling, limits: limits,
                                         logger: connectionLogger)
        connectionSource = loop.watch(accepted.rawValue) { [unowned self] in serveConnection() }
        // Further front ends wait in the backlog until this one goes away.
        listenerSource = nil
        return false
    }

    /// Handles one message. - Returns: whether to keep watching the connection.
    private func serveConnection() -> Bool {
        guard let connection else { return false }
        switch connection.serveOneMessage() {
        case .keepServing:
            return true
        case .closed(let reason):
            connectionSource = nil
            closeConnection(reason: reason)
            watchListener()
            return false
        }
    }

    private func closeConnection(reason: String) {
        guard let connection else { return }
        if let connectionSource {
            loop.remove(connectionSource)
            self.connectionSource = nil
        }
        connection.close()
        self.connection = nil
        logger.notice("front end disconnected", metadata: ["reason": "\(reason)"])
    }
}
