#if canImport(Glibc)
import Glibc
#endif
import IOMMUModel
import Logging
import VhostSystem
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// One thread serving one virtqueue: waits with epoll on the kick eventfd, its mailbox and the
/// handler's completion notifier, walks the ring, submits each request to the device's handler,
/// publishes what completes and signals the call eventfd once per batch. The ring state lives
/// only on this thread; the control plane talks to it by commands.
///
/// The worker's concerns, one file each: the event loop (here), commands (`+Commands`), serving
/// and completing requests (`+Requests`), polling (`+Polling`) and IOVAs (`+IOTLB`).
final class QueueWorker: @unchecked Sendable {
    // SAFETY (Sendable): after `init`, the mutable state below is touched only by the worker
    // thread; other threads use `mailbox` (locked) and `join`.
    let queueIndex: Int
    let mailbox: WorkerMailbox
    let device: any VhostUserDevice
    let logger: Logger
    let epoll: Epoll
    private var thread: pthread_t?

    var ring: SplitQueue?
    var configuration: RingStartConfiguration?
    var handler: (any VirtqueueRequestHandler)?
    /// The ring size the handler was made for: a ring of another size gets a new one.
    var handlerQueueSize = 0
    /// Where the handler reports requests it completed later; sized for the ring.
    var completions = CompletedRequests(capacity: 0)
    /// The handler's completion notifier while epoll watches it.
    var watchedCompletionNotifier: Int32?
    var memory: GuestMemory
    var kick: EventFD?
    var call: EventFD?
    var errorNotifier: EventFD?
    var enabled = false
    var broken = false
    /// The device refuses this ring: every request fails (`RingStartConfiguration.refusal`).
    var refused = false
    var workPending = false
    var running = true
    /// Commands taken from the mailbox and not yet performed: they wait until no request is
    /// outstanding, and no request is taken meanwhile. So a stop, a ring start and exit never
    /// act under a request in flight. A new IOTLB or memory table is not held (unless behind a
    /// held command): it is answered once the requests still using what it removes complete
    /// (`pins`, `retiredMemory`), and the queue goes on meanwhile.
    var heldCommands: [WorkerCommand] = []

    // ACCESS_PLATFORM only (nil / unused otherwise): the IOVA translator holding this worker's
    // IOTLB snapshot, whether the ring's addresses are currently mapped, and the miss the queue
    // is stalled on.
    var translator: IOVATranslator?
    var backendChannel: BackendChannel?
    var ringMapped = false
    var kicked = false
    var pendingMiss: PendingMiss?
    var missingRingIOVA: (UInt64, IOMMUAccess)?
    /// Contiguous views of scattered ring parts, by part, with the pages they show: an IOTLB
    /// change that leaves a part's pages alone keeps its view.
    var ringViews: [VirtqueueError.Ring: (pages: [IOTLBSegment], view: MemoryMapping)] = [:]
    /// The IOVA ranges of the requests in flight, and the INVALIDATEs waiting for them.
    var pins = InFlightPins(queueSize: 0)
    /// Memory tables replaced while requests submitted under them were in flight.
    var retiredMemory = RetiredMemoryTables()

    // Dirty logging (LOG_ALL, `+DirtyLogging`): the front end's log while logging is on, the
    // used ring's `log_guest_addr` while its LOG flag is set, that ring's guest-physical pieces
    // (found on first use, forgotten when the ring, memory table, IOTLB or logging changes),
    // and whether a write that could not be logged was reported.
    var dirtyLog: DirtyPageLog?
    var usedRingLogAddress: UInt64?
    var usedRingLogPieces: [(address: UInt64, length: UInt64)]?
    var unloggedWriteNoted = false

    // Adaptive polling (QueuePolling): the current window, and when the worker last went to
    // sleep with notifications on (0 while awake).
    let polling: QueuePolling
    var pollBudgetNanoseconds: UInt64
    var sleepingSince: UInt64 = 0
    /// Completions were published since the last batch: the driver answers them with new
    /// requests, so the ring is worth polling even if the batch finds nothing.
    var completedSinceBatch = false

    struct PendingMiss {
        var iova: UInt64
        var access: IOMMUAccess
        let deadline: MonotonicDeadline
    }

    /// How long a queue waits for the UPDATE answering its MISS before it fails the request
    /// (or, for a ring address, stops the ring).
    static let missTimeoutMilliseconds = 2_000

    static let wakeToken: UInt64 = 0
    static let kickToken: UInt64 = 1
    static let completionToken: UInt64 = 2
    /// Requests taken before the worker looks at its mailbox again, so a busy ring cannot
    /// starve commands such as GET_VRING_BASE.
    static let batchLimit = 256

    init(queueIndex: Int, device: any VhostUserDevice, memory: GuestMemory, polling: QueuePolling = .off,
         logger: Logger) throws(BackendError) {
        self.queueIndex = queueIndex
        self.polling = polling
        pollBudgetNanoseconds = polling.maximumNanoseconds
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

    /// Asks the thread to finish (after the requests in flight) and waits for it.
    func shutdown() {
        mailbox.post(.exit)
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    // MARK: - Event loop

    private func run() {
        CurrentThread.setName("vq\(queueIndex)")
        while running {
            let timeout = workPending && heldCommands.isEmpty ? 0 : missWaitMilliseconds()
            // About to sleep with requests outstanding: the handler's notifier must signal the
            // next completion (it need not while the worker is awake).
            if timeout != 0, (ring?.outstandingCount ?? 0) > 0, handler?.prepareToSleep() == true {
                reapCompletions()
                performHeldCommandsWhenIdle()
                continue
            }
            let ready: Int
            do {
                ready = try epoll.wait(timeoutMilliseconds: timeout)
            } catch {
                logger.error("epoll_wait failed, worker stops", metadata: ["error": "\(error)"])
                return
            }
            for index in 0..<ready {
                switch epoll.token(at: index) {
                case Self.wakeToken:
                    _ = try? mailbox.wakeup.drain()
                    for command in mailbox.takeAll() { take(command) }
                case Self.kickToken:
                    _ = try? kick?.drain()
                    workPending = true
                    kicked = true
                    if sleepingSince != 0 {
                        // A kick soon after going to sleep: polling would have caught it.
                        if MonotonicDeadline.now() &- sleepingSince < polling.maximumNanoseconds {
                            pollBudgetNanoseconds = polling.maximumNanoseconds
                        }
                        sleepingSince = 0
                    }
                case Self.completionToken:
                    reapCompletions()
                default:
                    break
                }
            }
            performHeldCommandsWhenIdle()
            if let pendingMiss, pendingMiss.deadline.hasPassed { workPending = true }
            // After .exit nothing more is served; while commands wait, nothing more is taken.
            if workPending, running, heldCommands.isEmpty {
                workPending = serve()
            }
        }
    }

    /// A command from the mailbox: a new IOTLB or memory table is performed at once (its answer
    /// waits for the requests using what it removes, not for the queue to be idle) unless
    /// commands before it are held, whose order it keeps; so is a change of dirty logging
    /// (requests are logged when they complete, whenever they started); anything else is held
    /// until no request is outstanding.
    private func take(_ command: WorkerCommand) {
        switch command {
        case .setIOTLB, .setMemory, .setDirtyLogging:
            if heldCommands.isEmpty {
                perform(command)
                return
            }
        default:
            break
        }
        heldCommands.append(command)
    }

    /// Performs the held commands once no request is outstanding.
    private func performHeldCommandsWhenIdle() {
        guard !heldCommands.isEmpty, (ring?.outstandingCount ?? 0) == 0 else { return }
        let commands = heldCommands
        heldCommands.removeAll(keepingCapacity: true)
        for command in commands { perform(command) }
    }

    func markBroken(_ error: VirtqueueError) {
        broken = true
        logger.error("guest broke the virtqueue rules; queue stopped until the front end restarts it",
                     metadata: ["error": "\(error)"])
        try? errorNotifier?.signal()
    }
}
