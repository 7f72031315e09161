#if canImport(Glibc)
import Glibc
#endif
import Logging
import StorageIO
import VhostSystem

/// One virtqueue's requests to an NBD server, on that queue's thread.
///
/// Each request goes out at once as one or more NBD commands (libnbd keeps many in flight on
/// the connection); answers are read when the socket is readable, their callbacks put the tag
/// in the inbox, and `reap` reports it. The completion notifier is an epoll of the socket, the
/// inbox's eventfd and a retry timer.
///
/// When the connection is lost, what was in flight and what comes meanwhile waits while the
/// queue reconnects (an attempt at once, then every `retryInterval`), and is sent again on the
/// new connection; after the disk's reconnect timeout it fails with EIO, and new requests fail
/// at once until a reconnection (tried at most every `retryInterval`) succeeds. Only requests
/// that got no answer are sent again; each request completes once.
final class NBDQueue: BlockStorageQueue {
    private let connection: NBDConnection
    private let reconnectTimeoutMilliseconds: Int
    private let logger: Logger
    private let commands: UnsafeMutablePointer<NBDCommand>
    private let depth: Int
    private let inbox: CompletionInbox
    private let poller: Epoll
    private let timer: TimerFD
    /// Tags waiting for a connection, and a second array to swap with when they are sent again
    /// (both reserve every tag: appending never allocates).
    private var waiting: [UInt64]
    private var resending: [UInt64]
    /// While requests wait: when they fail.
    private var waitDeadline: UInt64?
    /// After a wait timed out, until a reconnection: new requests fail at once.
    private var failingFast = false
    private var nextAttempt: UInt64 = 0
    /// The socket the poller watches: its descriptor, the connection generation, and whether
    /// for writing too.
    private var watched: (descriptor: Int32, generation: UInt64, writable: Bool)?

    static let retryIntervalNanoseconds: UInt64 = 1_000_000_000
    private static let socketToken: UInt64 = 0
    private static let inboxToken: UInt64 = 1
    private static let timerToken: UInt64 = 2

    /// Called when the queue ends: the connection may serve another queue.
    private let release: (@Sendable () -> Void)?

    init(connection: NBDConnection, depth: Int, reconnectTimeoutMilliseconds: Int, logger: Logger,
         release: (@Sendable () -> Void)?) throws(SystemError) {
        self.connection = connection
        self.release = release
        self.reconnectTimeoutMilliseconds = reconnectTimeoutMilliseconds
        self.logger = logger
        let slots = max(depth, 1)
        self.depth = slots
        inbox = try CompletionInbox(capacity: slots)
        commands = .allocate(capacity: slots)
        commands.initialize(repeating: NBDCommand(), count: slots)
        let inboxAddress = Unmanaged.passUnretained(inbox).toOpaque()
        for index in 0..<slots {
            commands[index].tag = UInt64(index)
            commands[index].inbox = inboxAddress
            commands[index].signals = connection.isShared
        }
        waiting = []
        waiting.reserveCapacity(slots)
        resending = []
        resending.reserveCapacity(slots)
        poller = try Epoll(capacity: 4)
        timer = try TimerFD()
        try poller.add(inbox.wakeup.rawValue, token: Self.inboxToken)
        try poller.add(timer.rawValue, token: Self.timerToken)
        watchSocket()
    }

    deinit {
        commands.deallocate()  // NBDCommand is trivial
        release?()
    }

    var completionNotifier: Int32 { poller.descriptor.rawValue }

    func read(_ vectors: UnsafePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> Bool {
        start(tag, .read, vectors: vectors, count: count, offset: offset, length: UInt64(length))
    }

    func write(_ vectors: UnsafePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> Bool {
        start(tag, .write, vectors: vectors, count: count, offset: offset, length: UInt64(length))
    }

    func flush(tag: UInt64) -> Bool {
        start(tag, .flush, vectors: nil, count: 0, offset: 0, length: 0)
    }

    func discard(offset: UInt64, length: UInt64, tag: UInt64) -> Bool {
        start(tag, .trim, vectors: nil, count: 0, offset: offset, length: length)
    }

    func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool, tag: UInt64) -> Bool {
        start(tag, .zero, vectors: nil, count: 0, offset: offset, length: length, unmap: unmap)
    }

    /// Commands went out when queued (libnbd writes them at once, or when the socket takes more).
    func submit() {}

    var hasCompletions: Bool {
        if !inbox.isEmpty { return true }
        // Answers waiting on the socket: worth a poll while the worker spins (it spares a sleep).
        var descriptor = pollfd(fd: poller.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    func prepareToSleep() -> Bool {
        watchSocket()
        return hasCompletions
    }

    func reap(into completions: IOCompletions) -> Int {
        let before = completions.count
        drive()
        while let tag = inbox.pop() {
            let command = commands[Int(tag)]
            if command.error == 0 {
                completions.append(tag: tag, result: 0)
            } else if !command.final, connection.lostConnection(since: command.generation) {
                wait(tag)
            } else {
                completions.append(tag: tag, result: -command.error)
            }
        }
        if !waiting.isEmpty { retryWaiting(into: completions) }
        watchSocket()
        return completions.count - before
    }

    // MARK: - Sending

    private func start(_ tag: UInt64, _ kind: NBDCommand.Kind, vectors: UnsafePointer<iovec>?, count: Int,
                       offset: UInt64, length: UInt64, unmap: Bool = false) -> Bool {
        guard tag < UInt64(depth) else { return false }
        let index = Int(tag)
        commands[index].kind = kind
        commands[index].vectors = vectors
        commands[index].vectorCount = count
        commands[index].offset = offset
        commands[index].length = length
        commands[index].unmap = unmap
        commands[index].final = false
        if !waiting.isEmpty {
            // Keep order with the requests already waiting for the connection.
            wait(tag)
        } else {
            send(tag)
        }
        return true
    }

    /// Sends on the live connection, or waits for one (fails at once while failing fast).
    private func send(_ tag: UInt64) {
        let command = commands + Int(tag)
        let sent = connection.withHandle { handle, generation in
            guard let handle else { return false }
            NBDCommand.issue(command, on: handle, generation: generation)
            return true
        }
        if !sent { wait(tag) }
    }

    private func wait(_ tag: UInt64) {
        if failingFast, MonotonicDeadline.now() < nextAttempt {
            fail(tag)
            return
        }
        if waiting.isEmpty, waitDeadline == nil {
            waitDeadline = MonotonicDeadline.now() &+ UInt64(reconnectTimeoutMilliseconds) &* 1_000_000
            nextAttempt = 0
            logger.warning("the NBD connection was lost; requests wait while it reconnects",
                           metadata: ["uri": "\(connection.uri)", "timeout-ms": "\(reconnectTimeoutMilliseconds)"])
        }
        waiting.append(tag)
        // The reconnection is tried in `reap`: make sure it runs even if nothing else comes.
        armTimer(at: nextAttempt)
    }

    /// Completes the request with EIO through the inbox, without a retry.
    private func fail(_ tag: UInt64) {
        commands[Int(tag)].error = EIO
        commands[Int(tag)].final = true
        inbox.push(tag, signal: false)
    }

    /// Reconnects when an attempt is due; sends the waiting requests on success, fails them once
    /// the deadline passed.
    private func retryWaiting(into completions: IOCompletions) {
        let now = MonotonicDeadline.now()
        let deadline = waitDeadline ?? now
        if now >= nextAttempt {
            let remaining = deadline > now ? Int((deadline - now) / 1_000_000) : 0
            let attemptMilliseconds = max(min(remaining, Int(Self.retryIntervalNanoseconds / 1_000_000)), 100)
            if let error = connection.reconnect(timeoutMilliseconds: attemptMilliseconds) {
                nextAttempt = MonotonicDeadline.now() &+ Self.retryIntervalNanoseconds / 5
                logger.debug("NBD reconnection failed", metadata: ["error": "\(error)"])
            } else {
                logger.notice("the NBD connection is back; waiting requests are sent again",
                              metadata: ["uri": "\(connection.uri)", "requests": "\(waiting.count)"])
                failingFast = false
                waitDeadline = nil
                swap(&waiting, &resending)
                for tag in resending { send(tag) }
                resending.removeAll(keepingCapacity: true)
                watchSocket()
                return
            }
        }
        if MonotonicDeadline.now() >= deadline {
            logger.error("the NBD server stayed unreachable; waiting requests fail with EIO",
                         metadata: ["uri": "\(connection.uri)", "requests": "\(waiting.count)"])
            for tag in waiting { completions.append(tag: tag, result: -EIO) }
            waiting.removeAll(keepingCapacity: true)
            waitDeadline = nil
            failingFast = true
            nextAttempt = MonotonicDeadline.now() &+ Self.retryIntervalNanoseconds
            return
        }
        armTimer(at: min(nextAttempt, deadline))
    }

    // MARK: - The poller

    /// Reads answers (and writes what waits) when the socket is ready; drains the inbox's
    /// eventfd and the timer.
    private func drive() {
        guard let ready = try? poller.wait(timeoutMilliseconds: 0), ready > 0 else { return }
        var readable = false, writable = false
        for index in 0..<ready {
            switch poller.token(at: index) {
            case Self.socketToken:
                let events = poller.events(at: index)
                readable = !events.isDisjoint(with: [.readable, .hangUp, .error])
                writable = events.contains(.writable)
            case Self.inboxToken:
                _ = try? inbox.wakeup.drain()
            default:
                timer.drain()
            }
        }
        guard readable || writable else { return }
        connection.withHandle { handle, _ in
            guard let handle else { return }
            handle.notify(readable: readable, writable: writable, confirmReadable: connection.isShared)
        }
    }

    /// Watches the connection's current socket, for writing too while libnbd has bytes to send.
    private func watchSocket() {
        let current: (descriptor: Int32, generation: UInt64, writable: Bool)? = connection.withHandle { handle, generation in
            guard let handle else { return nil }
            return (handle.descriptor, generation, handle.wantsToWrite)
        }
        guard let current else {
            watched = nil
            return
        }
        if let watched, watched == current { return }
        let events: Epoll.Events = current.writable ? [.readable, .writable] : .readable
        if let watched, watched.descriptor == current.descriptor, watched.generation == current.generation {
            try? poller.modify(current.descriptor, events: events, token: Self.socketToken)
        } else {
            // A new connection: the old socket left the epoll when it closed.
            do {
                try poller.add(current.descriptor, events: events, token: Self.socketToken)
            } catch {
                try? poller.modify(current.descriptor, events: events, token: Self.socketToken)
            }
        }
        watched = current
    }

    private func armTimer(at nanoseconds: UInt64) {
        timer.arm(atMonotonicNanoseconds: nanoseconds)
    }
}
