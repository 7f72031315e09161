#if canImport(Glibc)
import Glibc
#endif
import Logging
import StorageIO
import VhostSystem

/// One virtqueue's requests to an NBD server, on that queue's thread.
///
/// Each request goes out at once as one or more NBD commands on one of the queue's connections
/// (round robin; several when the server offers multi-conn, so a server that gives each
/// connection a few threads still sees the whole queue depth). Answers are read when a socket
/// is readable, their callbacks put the tag in the inbox, and `reap` reports it. The completion
/// notifier is an epoll of the sockets, the inbox's eventfd and a retry timer.
///
/// When a connection is lost, what was in flight on it and what comes while no connection is
/// up waits while the queue reconnects (an attempt at once, then every 200 ms), and is sent
/// again on a live connection; after the disk's reconnect timeout it fails with EIO, and new
/// requests fail at once until a reconnection (tried at most every second) succeeds. Only
/// requests that got no answer are sent again; each request completes once. A connection lost
/// while others are up is repaired when a request would have used it, at most once a second.
/// A connection whose server leaves a request unanswered for the request timeout (a server
/// stopped, or a network dropping packets: the socket stays open) is dropped and taken for
/// lost; the queue looks for such requests at most once a second while any is at a server. A
/// request unanswered twice (a server that is up but slower than the timeout) fails with EIO.
final class NBDQueue: BlockStorageQueue {
    private let connections: [NBDConnection]
    private let reconnectTimeoutMilliseconds: Int
    /// 0: requests may wait for their answers for ever.
    private let requestTimeoutNanoseconds: UInt64
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
    /// When a lost connection may next be repaired while others serve.
    private var nextRepair: UInt64 = 0
    /// The connection the next request goes to.
    private var cursor = 0
    /// Per tag: when its commands went to a connection (monotonic nanoseconds); 0 while the
    /// tag is not at a server. `atServer` counts the others.
    private let issuedAt: UnsafeMutablePointer<UInt64>
    private var atServer = 0
    /// Per tag: how often its connection was dropped for leaving it unanswered.
    private let timeouts: UnsafeMutablePointer<UInt8>
    /// When the requests at servers are next looked at for unanswered ones.
    private var nextStallCheck: UInt64 = 0
    /// What the timer is armed for (0: nothing, or it expired).
    private var timerDeadline: UInt64 = 0
    /// The socket the poller watches per connection: its descriptor, the connection's
    /// generation, and whether for writing too.
    private var watched: [(descriptor: Int32, generation: UInt64, writable: Bool)?]
    /// Called when the queue ends: its connections may serve another queue.
    private let release: (@Sendable () -> Void)?

    static let retryIntervalNanoseconds: UInt64 = 1_000_000_000
    private static let attemptIntervalNanoseconds: UInt64 = 200_000_000
    /// A repair while other connections serve may hold the queue this long at most.
    private static let repairTimeoutMilliseconds = 200
    /// A request whose connection was dropped this often for it fails instead of being sent again.
    private static let timeoutsBeforeFailing: UInt8 = 2
    private static let inboxToken: UInt64 = 0
    private static let timerToken: UInt64 = 1
    /// Socket `i`'s token is `firstSocketToken + i`.
    private static let firstSocketToken: UInt64 = 16

    init(connections: [NBDConnection], depth: Int, reconnectTimeoutMilliseconds: Int, requestTimeoutMilliseconds: Int = 0,
         logger: Logger, release: (@Sendable () -> Void)?) throws(SystemError) {
        self.connections = Array(connections.prefix(NBDDisk.maximumConnectionsPerQueue))
        self.reconnectTimeoutMilliseconds = reconnectTimeoutMilliseconds
        requestTimeoutNanoseconds = UInt64(clamping: max(requestTimeoutMilliseconds, 0)) &* 1_000_000
        self.logger = logger
        self.release = release
        let slots = max(depth, 1)
        self.depth = slots
        inbox = try CompletionInbox(capacity: slots)
        commands = .allocate(capacity: slots)
        commands.initialize(repeating: NBDCommand(), count: slots)
        issuedAt = .allocate(capacity: slots)
        issuedAt.initialize(repeating: 0, count: slots)
        timeouts = .allocate(capacity: slots)
        timeouts.initialize(repeating: 0, count: slots)
        let inboxAddress = Unmanaged.passUnretained(inbox).toOpaque()
        let signals = connections.contains { $0.isShared }
        for index in 0..<slots {
            commands[index].tag = UInt64(index)
            commands[index].inbox = inboxAddress
            commands[index].signals = signals
        }
        waiting = []
        waiting.reserveCapacity(slots)
        resending = []
        resending.reserveCapacity(slots)
        watched = Array(repeating: nil, count: self.connections.count)
        poller = try Epoll(capacity: self.connections.count + 2)
        timer = try TimerFD()
        try poller.add(inbox.wakeup.rawValue, token: Self.inboxToken)
        try poller.add(timer.rawValue, token: Self.timerToken)
        watchSockets()
    }

    deinit {
        commands.deallocate()  // NBDCommand is trivial
        issuedAt.deallocate()
        timeouts.deallocate()
        release?()
    }

    var completionNotifier: Int32? { poller.descriptor.rawValue }

    func read(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart {
        start(tag, .read, vectors: UnsafePointer(vectors), count: count, offset: offset, length: UInt64(length))
    }

    func write(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart {
        start(tag, .write, vectors: UnsafePointer(vectors), count: count, offset: offset, length: UInt64(length))
    }

    func flush(tag: UInt64) -> BlockStorageStart {
        start(tag, .flush, vectors: nil, count: 0, offset: 0, length: 0)
    }

    func discard(offset: UInt64, length: UInt64, tag: UInt64) -> BlockStorageStart {
        start(tag, .trim, vectors: nil, count: 0, offset: offset, length: length)
    }

    func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool, tag: UInt64) -> BlockStorageStart {
        start(tag, .zero, vectors: nil, count: 0, offset: offset, length: length, unmap: unmap)
    }

    /// Commands went out when queued (libnbd writes them at once, or when the socket takes more).
    func submit() {}

    var hasCompletions: Bool {
        if !inbox.isEmpty { return true }
        // Answers waiting on a socket: worth a poll while the worker spins, which spares it a
        // sleep and a wakeup through the nested epoll (docs/network-storage.md measures both).
        var descriptor = pollfd(fd: poller.descriptor.rawValue, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    func prepareToSleep() -> Bool {
        watchSockets()
        // Requests at a server and no retry under way: wake for the next look at them.
        if requestTimeoutNanoseconds > 0, atServer > 0, waiting.isEmpty {
            if nextStallCheck == 0 { nextStallCheck = MonotonicDeadline.now() &+ stallCheckInterval }
            if timerDeadline != nextStallCheck { armTimer(at: nextStallCheck) }
        }
        return hasCompletions
    }

    func reap(into completions: IOCompletions) -> Int {
        let before = completions.count
        drive()
        while let tag = inbox.pop() {
            if issuedAt[Int(tag)] != 0 {
                issuedAt[Int(tag)] = 0
                atServer -= 1
            }
            let command = commands[Int(tag)]
            if command.error == 0 {
                completions.append(tag: tag, result: 0)
            } else if !command.final, command.error == ESHUTDOWN
                        || connections[command.connection].lostConnection(since: command.generation) {
                // ESHUTDOWN: the server is going away and did not run it (nbdkit on SIGTERM
                // answers so until its clients leave): leave that connection as if it died,
                // and count it as an unanswered try (a server that says so to every new
                // connection fails the request, as one that never answers does).
                if command.error == ESHUTDOWN {
                    connections[command.connection].abandon(generation: command.generation)
                    timeouts[Int(tag)] = min(timeouts[Int(tag)], Self.timeoutsBeforeFailing) &+ 1
                }
                // Sent again after a reconnection, unless it already went unanswered twice.
                if timeouts[Int(tag)] >= Self.timeoutsBeforeFailing {
                    completions.append(tag: tag, result: -EIO)
                } else {
                    wait(tag)
                }
            } else {
                completions.append(tag: tag, result: -command.error)
            }
        }
        if !waiting.isEmpty { retryWaiting(into: completions) }
        if requestTimeoutNanoseconds > 0, atServer > 0 {
            let now = MonotonicDeadline.now()
            if now >= nextStallCheck { dropStalledConnections(now: now) }
        }
        watchSockets()
        return completions.count - before
    }

    // MARK: - Sending

    private func start(_ tag: UInt64, _ kind: NBDCommand.Kind, vectors: UnsafePointer<iovec>?, count: Int,
                       offset: UInt64, length: UInt64, unmap: Bool = false) -> BlockStorageStart {
        guard tag < UInt64(depth) else { return .done(-EINVAL) }
        let index = Int(tag)
        commands[index].kind = kind
        commands[index].vectors = vectors
        commands[index].vectorCount = count
        commands[index].offset = offset
        commands[index].length = length
        commands[index].unmap = unmap
        commands[index].final = false
        timeouts[index] = 0
        if !waiting.isEmpty {
            // Keep order with the requests already waiting for a connection.
            wait(tag)
        } else {
            send(tag)
        }
        return .queued
    }

    /// Sends on the next live connection (repairing a lost one when due), or waits for one.
    private func send(_ tag: UInt64) {
        let command = commands + Int(tag)
        for step in 0..<connections.count {
            let index = (cursor + step) % connections.count
            let connection = connections[index]
            var sent = issue(command, on: index)
            if !sent, connections.count > 1, MonotonicDeadline.now() >= nextRepair {
                nextRepair = MonotonicDeadline.now() &+ Self.retryIntervalNanoseconds
                if connection.reconnect(timeoutMilliseconds: Self.repairTimeoutMilliseconds) == nil {
                    logger.info("a lost NBD connection is back", metadata: ["uri": "\(connection.uri)"])
                    watchSockets()
                    sent = issue(command, on: index)
                }
            }
            if sent {
                cursor = (index + 1) % connections.count
                if issuedAt[Int(tag)] == 0 { atServer += 1 }
                issuedAt[Int(tag)] = MonotonicDeadline.now()
                return
            }
        }
        wait(tag)
    }

    /// Issues the request on connection `index` if it is alive.
    private func issue(_ command: UnsafeMutablePointer<NBDCommand>, on index: Int) -> Bool {
        connections[index].withHandle { handle, generation in
            guard let handle else { return false }
            command.pointee.connection = index
            NBDCommand.issue(command, on: handle, generation: generation)
            return true
        }
    }

    private func wait(_ tag: UInt64) {
        if failingFast {
            // Given up on the server: the request fails at once unless an attempt, due at
            // most once a second and bounded to a fraction of one, finds it back.
            let now = MonotonicDeadline.now()
            guard now >= nextAttempt else { return fail(tag) }
            nextAttempt = now &+ Self.retryIntervalNanoseconds
            guard reconnectOne(before: now &+ Self.attemptIntervalNanoseconds) else { return fail(tag) }
            logger.notice("the NBD connection is back", metadata: ["uri": "\(connections[0].uri)"])
            failingFast = false
            watchSockets()
            return send(tag)
        }
        if waiting.isEmpty, waitDeadline == nil {
            waitDeadline = MonotonicDeadline.now() &+ UInt64(clamping: reconnectTimeoutMilliseconds) &* 1_000_000
            nextAttempt = 0
            logger.warning("the NBD connection was lost; requests wait while it reconnects",
                           metadata: ["uri": "\(connections[0].uri)", "timeout-ms": "\(reconnectTimeoutMilliseconds)"])
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

    /// Reconnects when an attempt is due; sends the waiting requests once a connection is up,
    /// fails them once the deadline passed.
    private func retryWaiting(into completions: IOCompletions) {
        let now = MonotonicDeadline.now()
        let deadline = waitDeadline ?? now
        if now >= nextAttempt {
            if reconnectOne(before: deadline) {
                logger.notice("the NBD connection is back; waiting requests are sent again",
                              metadata: ["uri": "\(connections[0].uri)", "requests": "\(waiting.count)"])
                failingFast = false
                waitDeadline = nil
                swap(&waiting, &resending)
                for tag in resending { send(tag) }
                resending.removeAll(keepingCapacity: true)
                watchSockets()
                return
            }
            nextAttempt = MonotonicDeadline.now() &+ Self.attemptIntervalNanoseconds
        }
        if MonotonicDeadline.now() >= deadline {
            logger.error("the NBD server stayed unreachable; waiting requests fail with EIO",
                         metadata: ["uri": "\(connections[0].uri)", "requests": "\(waiting.count)"])
            for tag in waiting { completions.append(tag: tag, result: -EIO) }
            waiting.removeAll(keepingCapacity: true)
            waitDeadline = nil
            failingFast = true
            nextAttempt = MonotonicDeadline.now() &+ Self.retryIntervalNanoseconds
            return
        }
        armTimer(at: min(nextAttempt, deadline))
    }

    /// Whether a connection is up after trying, in turn, the lost ones (each attempt bounded by
    /// the time left before `deadline`, at most a second, at least 50 ms).
    private func reconnectOne(before deadline: UInt64) -> Bool {
        for connection in connections {
            let now = MonotonicDeadline.now()
            let remaining = deadline > now ? Int((deadline - now) / 1_000_000) : 0
            let attemptMilliseconds = max(min(remaining, Int(Self.retryIntervalNanoseconds / 1_000_000)), 50)
            if let error = connection.reconnect(timeoutMilliseconds: attemptMilliseconds) {
                logger.debug("NBD reconnection failed", metadata: ["error": "\(error)"])
            } else {
                return true
            }
        }
        return false
    }

    // MARK: - Unanswered requests

    /// Drops each connection on which a request has waited for its answer longer than the
    /// request timeout: libnbd then fails what is in flight there, and those requests wait for
    /// a reconnection like those of a server that died.
    private func dropStalledConnections(now: UInt64) {
        nextStallCheck = now &+ stallCheckInterval
        var stalled: UInt32 = 0
        for index in 0..<depth where issuedAt[index] != 0 && now &- issuedAt[index] >= requestTimeoutNanoseconds {
            let connection = commands[index].connection
            if connection < connections.count { stalled |= 1 << UInt32(connection) }
            timeouts[index] = min(timeouts[index], Self.timeoutsBeforeFailing) &+ 1
            issuedAt[index] = 0
            atServer -= 1
        }
        guard stalled != 0 else { return }
        for (index, connection) in connections.enumerated() where stalled & (1 << UInt32(index)) != 0 {
            logger.warning("the NBD server left a request unanswered past the request timeout; the connection is dropped",
                           metadata: ["uri": "\(connection.uri)", "timeout-ms": "\(requestTimeoutNanoseconds / 1_000_000)"])
            connection.withHandle { handle, _ in handle?.dropConnection() }
        }
    }

    /// A request is found unanswered between the request timeout and this much later.
    private var stallCheckInterval: UInt64 { min(requestTimeoutNanoseconds, Self.retryIntervalNanoseconds) }

    private func armTimer(at deadline: UInt64) {
        timer.arm(atMonotonicNanoseconds: deadline)
        timerDeadline = deadline
    }

    // MARK: - The poller

    /// Reads answers (and writes what waits) on the sockets that are ready; drains the inbox's
    /// eventfd and the timer.
    private func drive() {
        guard let ready = try? poller.wait(timeoutMilliseconds: 0), ready > 0 else { return }
        var readable: UInt32 = 0, writable: UInt32 = 0
        for index in 0..<ready {
            switch poller.token(at: index) {
            case Self.inboxToken:
                _ = try? inbox.wakeup.drain()
            case Self.timerToken:
                timer.drain()
                timerDeadline = 0
            case let token:
                let connection = token &- Self.firstSocketToken
                guard connection < UInt64(connections.count) else { continue }
                let events = poller.events(at: index)
                if !events.isDisjoint(with: [.readable, .hangUp, .error]) { readable |= 1 << UInt32(connection) }
                if events.contains(.writable) { writable |= 1 << UInt32(connection) }
            }
        }
        guard readable | writable != 0 else { return }
        for (index, connection) in connections.enumerated() where (readable | writable) & (1 << UInt32(index)) != 0 {
            connection.withHandle { handle, _ in
                handle?.notify(readable: readable & (1 << UInt32(index)) != 0, writable: writable & (1 << UInt32(index)) != 0,
                               confirmReadable: connection.isShared)
            }
        }
    }

    /// Watches each connection's current socket, for writing too while libnbd has bytes to send.
    private func watchSockets() {
        for (index, connection) in connections.enumerated() {
            let current: (descriptor: Int32, generation: UInt64, writable: Bool)? = connection.withHandle { handle, generation in
                guard let handle else { return nil }
                return (handle.descriptor, generation, handle.wantsToWrite)
            }
            guard let current else {
                watched[index] = nil
                continue
            }
            if let previous = watched[index], previous == current { continue }
            let events: Epoll.Events = current.writable ? [.readable, .writable] : .readable
            let token = Self.firstSocketToken + UInt64(index)
            if let previous = watched[index], previous.descriptor == current.descriptor, previous.generation == current.generation {
                try? poller.modify(current.descriptor, events: events, token: token)
            } else {
                // A new connection: the old socket left the epoll when it closed.
                do {
                    try poller.add(current.descriptor, events: events, token: token)
                } catch {
                    try? poller.modify(current.descriptor, events: events, token: token)
                }
            }
            watched[index] = current
        }
    }
}
