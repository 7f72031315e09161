#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge
import Logging
import VhostSystem
import VhostUserProtocol
import VirtioCore

/// One thread serving one virtqueue: waits on the kick eventfd and its mailbox with epoll, walks
/// the ring, hands each request to the device's handler and signals the call eventfd once per
/// batch. The ring state lives only on this thread; the control plane talks to it by commands.
final class QueueWorker: @unchecked Sendable {
    // SAFETY (Sendable): after `init`, the mutable state below is touched only by the worker
    // thread; other threads use `mailbox` (locked) and `join`.
    let queueIndex: Int
    let mailbox: WorkerMailbox
    private let device: any VhostUserDevice
    private let logger: Logger
    private let epoll: Epoll
    private var thread: pthread_t?

    private var ring: SplitQueue?
    private var configuration: RingStartConfiguration?
    private var handler: (any VirtqueueRequestHandler)?
    private var memory: GuestMemory
    private var kick: EventFD?
    private var call: EventFD?
    private var errorNotifier: EventFD?
    private var enabled = false
    private var broken = false
    private var workPending = false
    private var running = true

    private static let wakeToken: UInt64 = 0
    private static let kickToken: UInt64 = 1
    /// Requests served before the worker looks at its mailbox again, so a busy ring cannot
    /// starve commands such as GET_VRING_BASE.
    private static let batchLimit = 256

    init(queueIndex: Int, device: any VhostUserDevice, memory: GuestMemory, logger: Logger) throws(BackendError) {
        self.queueIndex = queueIndex
        self.device = device
        self.memory = memory
        var logger = logger
        logger[metadataKey: "queue"] = "\(queueIndex)"
        self.logger = logger
        do {
            mailbox = try WorkerMailbox()
            epoll = try Epoll(capacity: 4)
            try epoll.add(mailbox.wakeup.rawValue, token: Self.wakeToken)
        } catch {
            throw .workerStartFailed(error)
        }
    }

    /// Starts the thread.
    func launch() throws(BackendError) {
        let context = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { raw in
            guard let raw else { return nil }
            let worker = Unmanaged<QueueWorker>.fromOpaque(raw).takeRetainedValue()
            worker.run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<QueueWorker>.fromOpaque(context).release()
            throw .workerStartFailed(SystemError(call: "pthread_create", errno: result))
        }
        thread = handle
    }

    /// Asks the thread to finish and waits for it.
    func shutdown() {
        mailbox.post(.exit)
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    // MARK: - Worker thread

    private func run() {
        cvb_set_thread_name("vq\(queueIndex)")
        while running {
            let ready: Int
            do {
                ready = try epoll.wait(timeoutMilliseconds: workPending ? 0 : -1)
            } catch {
                logger.error("epoll_wait failed, worker stops", metadata: ["error": "\(error)"])
                return
            }
            for index in 0..<ready {
                switch epoll.token(at: index) {
                case Self.wakeToken:
                    _ = try? mailbox.wakeup.drain()
                    for command in mailbox.takeAll() { perform(command) }
                case Self.kickToken:
                    _ = try? kick?.drain()
                    workPending = true
                default:
                    break
                }
            }
            if workPending {
                workPending = serveBatch()
            }
        }
    }

    /// Serves up to `batchLimit` requests, publishes them and notifies the driver once.
    /// - Returns: whether more work may be waiting.
    private func serveBatch() -> Bool {
        guard enabled, !broken, var queue = ring, let handler else { return false }
        var served = 0
        var failure: VirtqueueError?
        do {
            while served < Self.batchLimit, let chain = try queue.popAvailable(memory: memory) {
                let written = handler.handle(chain)
                queue.pushUsed(head: chain.headIndex, writtenLength: written)
                served += 1
            }
        } catch {
            failure = error
        }
        var more = false
        if served > 0 {
            queue.publishUsed()
            if queue.needsNotification() { try? call?.signal() }
        }
        if let failure {
            ring = queue
            markBroken(failure)
            return false
        }
        if served == Self.batchLimit {
            more = true
        } else {
            more = queue.enableNotifications()
        }
        ring = queue
        return more
    }

    private func markBroken(_ error: VirtqueueError) {
        broken = true
        logger.error("guest broke the virtqueue rules; queue stopped until the front end restarts it",
                     metadata: ["error": "\(error)"])
        try? errorNotifier?.signal()
    }

    private func perform(_ command: WorkerCommand) {
        switch command {
        case .start(let configuration):
            start(configuration)
        case .stop(let completion):
            let index = ring?.nextAvailableIndex ?? configuration?.nextAvailableIndex ?? 0
            if let kick { try? epoll.remove(kick.rawValue) }
            kick = nil
            ring = nil
            handler = nil
            configuration = nil
            workPending = false
            broken = false
            completion.complete(UInt32(index))
        case .setCall(let eventfd):
            call = eventfd
        case .setError(let eventfd):
            errorNotifier = eventfd
        case .setEnabled(let value):
            enabled = value
            // Kicks that came while the ring was disabled were drained but not served.
            if value { workPending = ring != nil }
        case .setMemory(let newMemory, let completion):
            memory = newMemory
            if let configuration, let current = ring {
                relocate(configuration, keeping: current)
            }
            completion.complete()
        case .exit:
            running = false
        }
    }

    private func start(_ configuration: RingStartConfiguration) {
        if let kick { try? epoll.remove(kick.rawValue) }
        self.configuration = configuration
        memory = configuration.memory
        kick = configuration.kick
        call = configuration.call
        errorNotifier = configuration.error
        enabled = configuration.enabled
        broken = false
        do {
            let layout = try SplitQueue.Layout.translate(
                queueSize: configuration.size, descriptorTable: configuration.descriptorTable,
                availableRing: configuration.availableRing, usedRing: configuration.usedRing, memory: memory)
            ring = SplitQueue(layout: layout,
                              features: SplitQueue.Features(negotiatedFeatures: configuration.features.rawValue),
                              nextAvailableIndex: configuration.nextAvailableIndex,
                              maximumChainLength: device.maximumQueueSize)
        } catch {
            ring = nil
            markBroken(error)
            return
        }
        if handler == nil {
            handler = device.makeRequestHandler(queueIndex: queueIndex, negotiatedFeatures: configuration.features)
        }
        do {
            try epoll.add(configuration.kick.rawValue, token: Self.kickToken)
        } catch {
            // Not an eventfd (nor anything pollable): the ring would never hear a kick.
            broken = true
            logger.error("the kick descriptor cannot be watched; queue stopped until the front end restarts it",
                         metadata: ["error": "\(error)"])
            try? errorNotifier?.signal()
            return
        }
        // The driver may have queued requests (and kicked) before the ring started.
        workPending = true
    }

    /// Re-resolves the ring addresses against a new memory table, keeping the ring indices.
    private func relocate(_ configuration: RingStartConfiguration, keeping current: SplitQueue) {
        var queue = current
        do {
            let layout = try SplitQueue.Layout.translate(
                queueSize: configuration.size, descriptorTable: configuration.descriptorTable,
                availableRing: configuration.availableRing, usedRing: configuration.usedRing, memory: memory)
            try queue.relocate(to: layout)
            ring = queue
        } catch {
            ring = nil
            markBroken(error)
        }
    }
}
