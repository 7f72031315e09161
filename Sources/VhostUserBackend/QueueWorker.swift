#if canImport(Glibc)
import Glibc
#endif
import IOMMUModel
import Logging
import VhostSystem
import VhostUserProtocol
import VirtioCore
import VirtioSpec

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
    /// The device refuses this ring: every request fails (`RingStartConfiguration.refusal`).
    private var refused = false
    private var workPending = false
    private var running = true

    // ACCESS_PLATFORM only (nil / unused otherwise): the IOVA translator holding this worker's
    // IOTLB snapshot, whether the ring's addresses are currently mapped, and the miss the queue
    // is stalled on.
    private var translator: IOVATranslator?
    private var backendChannel: BackendChannel?
    private var ringMapped = false
    private var kicked = false
    private var pendingMiss: PendingMiss?
    private var missingRingIOVA: (UInt64, IOMMUAccess)?
    /// Contiguous views of scattered ring parts, by part, with the pages they show: an IOTLB
    /// change that leaves a part's pages alone keeps its view.
    private var ringViews: [VirtqueueError.Ring: (pages: [IOTLBSegment], view: MemoryMapping)] = [:]
    private var failedRequests = 0

    // Adaptive polling (QueuePolling): the current window, and when the worker last went to
    // sleep with notifications on (0 while awake).
    private let polling: QueuePolling
    private var pollBudgetNanoseconds: UInt64
    private var sleepingSince: UInt64 = 0

    struct PendingMiss {
        var iova: UInt64
        var access: IOMMUAccess
        let deadline: MonotonicDeadline
    }

    /// How long a queue waits for the UPDATE answering its MISS before it fails the request
    /// (or, for a ring address, stops the ring).
    static let missTimeoutMilliseconds = 2_000

    private static let wakeToken: UInt64 = 0
    private static let kickToken: UInt64 = 1
    /// Requests served before the worker looks at its mailbox again, so a busy ring cannot
    /// starve commands such as GET_VRING_BASE.
    private static let batchLimit = 256

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
        CurrentThread.setName("vq\(queueIndex)")
        while running {
            let ready: Int
            do {
                ready = try epoll.wait(timeoutMilliseconds: workPending ? 0 : missWaitMilliseconds())
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
                    kicked = true
                    if sleepingSince != 0 {
                        // A kick soon after going to sleep: polling would have caught it.
                        if MonotonicDeadline.now() &- sleepingSince < polling.maximumNanoseconds {
                            pollBudgetNanoseconds = polling.maximumNanoseconds
                        }
                        sleepingSince = 0
                    }
                default:
                    break
                }
            }
            if let pendingMiss, pendingMiss.deadline.hasPassed { workPending = true }
            if workPending, running {  // after .exit, nothing more is served
                workPending = translator == nil ? serveBatch() : serveIOVABatch()
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
            // A command (stop, exit on SIGTERM, a new memory table or IOTLB) ends the batch
            // between requests: what was taken is finished, nothing more is taken before it.
            while served < Self.batchLimit, !mailbox.hasCommands, let chain = try queue.popAvailable(memory: memory) {
                let written = refused ? handler.fail(chain) : handler.handle(chain)
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
            more = finishBatch(&queue, served: served)
        }
        ring = queue
        return more
    }

    /// After a batch that emptied the ring: poll for the next request within the current
    /// window, else turn notifications on (true if requests came meanwhile) and note when the
    /// worker went to sleep.
    private func finishBatch(_ queue: inout SplitQueue, served: Int) -> Bool {
        if served > 0, pollBudgetNanoseconds > 0 {
            let deadline = MonotonicDeadline.now() &+ pollBudgetNanoseconds
            var spins = 0
            while true {
                if queue.hasPendingAvailable { return true }
                // A command (stop, new memory table, IOTLB change) ends the poll at once; the
                // ring goes to sleep normally and the command is taken from the mailbox.
                if mailbox.hasCommands { break }
                SharedMemoryOrdering.spinWaitHint()
                spins &+= 1
                if spins & 63 == 0, MonotonicDeadline.now() >= deadline { break }
            }
            pollBudgetNanoseconds = pollBudgetNanoseconds < 2_000 ? 0 : pollBudgetNanoseconds / 2
        }
        if queue.enableNotifications() { return true }
        sleepingSince = MonotonicDeadline.now()
        return false
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
            translator = nil
            ringMapped = false
            ringViews = [:]
            kicked = false
            pendingMiss = nil
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
            if let translator {
                translator.replace(memory: newMemory)
                ringViews = [:]  // their pages may belong to a region that went
                resolveIOVARing()
            } else if let configuration, let current = ring {
                relocate(configuration, keeping: current)
            }
            completion.complete()
        case .setIOTLB(let iotlb, let completion):
            if let translator {
                translator.replace(iotlb: iotlb)
                // The pending miss is answered once its IOVA is mapped: forget it, so that if
                // the guest unmaps that IOVA again later (lazy flushes do, rings included) the
                // next miss there sends a new MISS with a new deadline. Keeping it made the
                // queue wait silently on a stale deadline and stop.
                let stalled = pendingMiss != nil
                if let pending = pendingMiss,
                   case .mapped = translator.ringAddress(pending.iova, length: 1, access: pending.access) {
                    pendingMiss = nil
                }
                let wasMapped = ringMapped
                resolveIOVARing()
                // A stalled queue retries at once; a ring that just got mapped serves what waits.
                if stalled || (ringMapped && !wasMapped) { workPending = true }
            }
            completion?.complete()
        case .exit:
            running = false
        }
    }

    private func start(_ configuration: RingStartConfiguration) {
        if let kick { try? epoll.remove(kick.rawValue) }
        self.configuration = configuration
        ringViews = [:]
        memory = configuration.memory
        kick = configuration.kick
        call = configuration.call
        errorNotifier = configuration.error
        enabled = configuration.enabled
        broken = false
        refused = configuration.refusal != nil
        if let refusal = configuration.refusal {
            logger.error("ring refused: every request on it fails until the front end sets a smaller ring",
                         metadata: ["reason": "\(refusal)"])
        }
        pendingMiss = nil
        if let iotlb = configuration.iotlb {
            translator = IOVATranslator(iotlb: iotlb, memory: memory)
            backendChannel = configuration.backendChannel
            ring = nil
            ringMapped = false
            kicked = false
            resolveIOVARing()
            if broken { return }
            if handler == nil {
                handler = device.makeRequestHandler(queueIndex: queueIndex, queueSize: configuration.size,
                                                    negotiatedFeatures: configuration.features)
            }
            watchKick(configuration)
            // Ring addresses not mapped yet wait for an UPDATE; a MISS for them is sent only once
            // the driver kicks (QEMU 7.2 is then past its start sequence: no nested reply loop).
            workPending = ringMapped
            return
        }
        translator = nil
        do {
            let layout = try SplitQueue.Layout.translate(
                queueSize: configuration.size, descriptorTable: configuration.descriptorTable,
                availableRing: configuration.availableRing, usedRing: configuration.usedRing, memory: memory)
            ring = SplitQueue(layout: layout,
                              features: SplitQueue.Features(negotiated: configuration.features),
                              nextAvailableIndex: configuration.nextAvailableIndex,
                              maximumChainLength: device.maximumChainLength)
        } catch {
            ring = nil
            markBroken(error)
            return
        }
        attachInflight(configuration)
        if handler == nil {
            handler = device.makeRequestHandler(queueIndex: queueIndex, queueSize: configuration.size,
                                                    negotiatedFeatures: configuration.features)
        }
        watchKick(configuration)
        // The driver may have queued requests (and kicked) before the ring started.
        workPending = !broken
    }

    /// With an inflight area, the ring logs into its region: recovery first (what a previous
    /// instance left in flight is served before new requests), then every fetch and completion.
    /// A region the ring cannot use (the area covers fewer queues, the region is too small for
    /// the ring or breaks the layout's rules) is left alone and the queue is served without
    /// crash recovery: the guest's I/O goes on, and the log says why the queue is not logged.
    private func attachInflight(_ configuration: RingStartConfiguration) {
        guard let area = configuration.inflight, var queue = ring else { return }
        guard let (region, bytes) = area.region(queue: queueIndex, queueSize: queue.queueSize) else {
            logger.error("the inflight area covers fewer queues than this one; the queue runs without crash recovery",
                         metadata: ["area-queues": "\(area.queueCount)"])
            return
        }
        do throws(InflightError) {
            let recovery = try queue.attachInflightRegion(region, regionBytes: bytes)
            ring = queue
            if !recovery.resubmit.isEmpty {
                logger.notice("resubmitting requests a previous instance left in flight",
                              metadata: ["count": "\(recovery.resubmit.count)", "next-available": "\(recovery.nextAvailableIndex)"])
            }
        } catch {
            logger.error("the inflight area's region is unusable; the queue runs without crash recovery",
                         metadata: ["error": "\(error)", "ring": "\(queue.queueSize)", "region-bytes": "\(bytes)"])
        }
    }

    private func watchKick(_ configuration: RingStartConfiguration) {
        do {
            try epoll.add(configuration.kick.rawValue, token: Self.kickToken)
        } catch {
            // Not an eventfd (nor anything pollable): the ring would never hear a kick.
            broken = true
            logger.error("the kick descriptor cannot be watched; queue stopped until the front end restarts it",
                         metadata: ["error": "\(error)"])
            try? errorNotifier?.signal()
        }
    }

    // MARK: - ACCESS_PLATFORM (IOVAs)

    /// The epoll timeout while idle: until the pending miss expires, or forever.
    private func missWaitMilliseconds() -> Int32 {
        guard let pendingMiss else { return -1 }
        let now = MonotonicDeadline.now()
        guard pendingMiss.deadline.nanoseconds > now else { return 0 }
        return Int32(clamping: (pendingMiss.deadline.nanoseconds - now + 999_999) / 1_000_000)
    }

    /// Translates the ring addresses (IOVAs) through the IOTLB snapshot. Mapped: the ring is
    /// (re)built at the new host addresses, keeping its indices. Not (yet) mapped: the ring
    /// waits (`ringMapped` false, `missingRingIOVA` set) until an UPDATE maps it. A part
    /// contiguous in IOVA space but not in the front end's (the guest's IOMMU maps the pages
    /// of a ring larger than a page wherever it likes: Linux does for QEMU 10.0's 1024-entry
    /// rings) is seen through a contiguous view of its pages.
    private func resolveIOVARing() {
        guard let translator, let configuration, !broken else { return }
        missingRingIOVA = nil
        let size = configuration.size
        let parts: [(VirtqueueError.Ring, UInt64, Int, IOMMUAccess)] = [
            (.descriptorTable, configuration.descriptorTable.rawValue, SplitRing.descriptorTableByteCount(queueSize: size), .read),
            (.availableRing, configuration.availableRing.rawValue, SplitRing.availableRingByteCount(queueSize: size), .read),
            (.usedRing, configuration.usedRing.rawValue, SplitRing.usedRingByteCount(queueSize: size), .write),
        ]
        var pointers: [UnsafeMutableRawPointer] = []
        var views: [MemoryMapping] = []
        for (part, iova, length, access) in parts {
            switch translator.ringAddress(iova, length: length, access: access) {
            case .mapped(let user):
                guard let host = memory.pointer(user, length: length) else {
                    ring = nil
                    ringMapped = false
                    markBroken(.ringNotInGuestMemory(part, address: iova, length: length))
                    return
                }
                pointers.append(host)
            case .missing(let missing):
                ringMapped = false
                missingRingIOVA = (missing, access)
                return
            case .scattered(let pages):
                guard let view = ringViews[part].flatMap({ $0.pages == pages ? $0.view : nil }) ?? scatteredRingView(pages) else {
                    ring = nil
                    ringMapped = false
                    markBroken(.ringNotInGuestMemory(part, address: iova, length: length))
                    return
                }
                views.append(view)
                ringViews[part] = (pages, view)
                pointers.append(view.base + Int(iova % UInt64(MemoryMapping.pageSize)))
            }
        }
        do {
            let layout = try SplitQueue.Layout(queueSize: size, descriptorTable: pointers[0], availableRing: pointers[1],
                                               usedRing: pointers[2], memory: memory, views: views)
            if var current = ring {
                try current.relocate(to: layout)
                ring = current
            } else {
                ring = SplitQueue(layout: layout,
                                  features: SplitQueue.Features(negotiated: configuration.features),
                                  nextAvailableIndex: configuration.nextAvailableIndex,
                                  maximumChainLength: device.maximumChainLength)
                attachInflight(configuration)
            }
            ringMapped = true
        } catch {
            ring = nil
            ringMapped = false
            markBroken(error)
        }
    }

    /// A contiguous view of the pages a scattered ring part lies on, each page where the
    /// IOTLB and the memory table put it; nil when a page is outside guest memory or not
    /// page-aligned there (the front end's mapping is then unusable as a ring).
    private func scatteredRingView(_ pages: [IOTLBSegment]) -> MemoryMapping? {
        guard !pages.isEmpty else { return nil }
        var pieces: [MemoryMapping.AliasedPiece] = []
        var offset = 0
        for page in pages {
            guard let pieceLength = Int(exactly: page.length),
                  let host = memory.pointer(FrontEndVirtualAddress(rawValue: page.userAddress), length: pieceLength)
            else { return nil }
            pieces.append(MemoryMapping.AliasedPiece(source: host, offset: offset, length: pieceLength))
            offset += pieceLength
        }
        do {
            return try MemoryMapping(aliasing: pieces, length: offset)
        } catch {
            logger.error("cannot map a contiguous view of a scattered ring", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Sends a MISS for `iova` unless the queue already waits for that one; keeps the first
    /// deadline, so a request whose buffers miss one after the other is still bounded.
    /// - Returns: false once the pending miss has expired (the caller gives up).
    private func stall(onMiss iova: UInt64, access: IOMMUAccess) -> Bool {
        if var pending = pendingMiss {
            if pending.deadline.hasPassed { return false }
            if pending.iova != iova || pending.access != access {
                pending.iova = iova
                pending.access = access
                pendingMiss = pending
                backendChannel?.sendMiss(iova: iova, access: access)
            }
            return true
        }
        pendingMiss = PendingMiss(iova: iova, access: access,
                                  deadline: MonotonicDeadline(millisecondsFromNow: Self.missTimeoutMilliseconds))
        backendChannel?.sendMiss(iova: iova, access: access)
        return true
    }

    /// `serveBatch` for IOVAs. A chain is translated whole before the device sees it; a miss
    /// stalls this queue (and only it) until an UPDATE arrives or the miss expires; a
    /// permission fault fails the request without touching its buffers.
    private func serveIOVABatch() -> Bool {
        guard enabled, !broken, let translator else { return false }
        backendChannel?.pollAcks()
        if !ringMapped {
            guard kicked, let (iova, access) = missingRingIOVA else { return false }
            if !stall(onMiss: iova, access: access) {
                pendingMiss = nil
                markBroken(.ringNotInGuestMemory(.descriptorTable, address: iova, length: 1))
            }
            return false
        }
        guard var queue = ring, let handler else { return false }
        var served = 0
        var failure: VirtqueueError?
        var stalled = false
        while served < Self.batchLimit, !mailbox.hasCommands {
            let chain: DescriptorChain
            do {
                translator.clearFault()
                guard let popped = try queue.popAvailable(translator: translator) else { break }
                chain = popped
            } catch {
                if error.consequence == .queueBroken {
                    failure = error
                    break
                }
                switch translator.fault {
                case .miss(let iova, let access)?:
                    if stall(onMiss: iova, access: access) {
                        stalled = true
                    } else {
                        logger.error("IOTLB miss not answered in time; request fails",
                                     metadata: ["iova": "0x\(String(iova, radix: 16))"])
                        pendingMiss = nil
                        if failRequest(&queue) { served += 1 } else { failure = error }
                    }
                case .permission(let iova, let needed)?:
                    logger.error("IOMMU permission fault; request fails without touching memory",
                                 metadata: ["iova": "0x\(String(iova, radix: 16))", "access": "\(needed)"])
                    if failRequest(&queue) { served += 1 } else { failure = error }
                case nil:
                    failure = error
                }
                if stalled || failure != nil { break }
                continue
            }
            pendingMiss = nil
            let written = refused ? handler.fail(chain) : handler.handle(chain)
            queue.pushUsed(head: chain.headIndex, writtenLength: written)
            served += 1
        }
        if served > 0 {
            queue.publishUsed()
            if queue.needsNotification() { try? call?.signal() }
        }
        if let failure {
            ring = queue
            markBroken(failure)
            return false
        }
        let more: Bool
        if stalled {
            more = false
        } else if served == Self.batchLimit {
            more = true
        } else {
            more = finishBatch(&queue, served: served)
        }
        ring = queue
        return more
    }

    /// Completes the next available request as failed: VIRTIO_BLK_S_IOERR in its status byte
    /// when that byte is mapped writable (the last byte of the chain's last descriptor, which
    /// must be device-writable), no byte of its buffers touched otherwise. Used length 1 with
    /// the status written, 0 without.
    /// - Returns: false if the ring itself is broken.
    private func failRequest(_ queue: inout SplitQueue) -> Bool {
        failedRequests += 1
        let head: UInt16?
        do {
            head = try queue.discardAvailable()
        } catch {
            return false
        }
        guard let head else { return true }
        var written: UInt32 = 0
        if let status = statusByte(head: head, layout: queue.layout) {
            // SAFETY: `statusByte` translated this one byte through the IOTLB (write allowed) and
            // the memory table of the translator, which the ring's layout keeps mapped.
            status.storeBytes(of: UInt8(1), as: UInt8.self)  // VIRTIO_BLK_S_IOERR
            written = 1
        }
        queue.pushUsed(head: head, writtenLength: written)
        return true
    }

    /// Host address of the status byte of the chain at `head` if the walk to its last
    /// descriptor is possible (direct descriptors, or one indirect table that is mapped) and
    /// that byte is mapped writable; nil otherwise.
    private func statusByte(head: UInt16, layout: SplitQueue.Layout) -> UnsafeMutableRawPointer? {
        guard let translator else { return nil }
        var table = UnsafeRawPointer(layout.descriptorTable)
        var entries = layout.queueSize
        var index = Int(head)
        var steps = 0
        while steps <= layout.queueSize {
            steps += 1
            guard index < entries else { return nil }
            // SAFETY: index < entries, and the table spans 16·entries mapped bytes (the ring's
            // layout, or an indirect table translated whole just below). Only the copy is used.
            let descriptor = SplitDescriptor(copyingFrom: table + index * SplitDescriptor.byteCount)
            if descriptor.flags.contains(.indirect) {
                guard table == UnsafeRawPointer(layout.descriptorTable), descriptor.length >= 16,
                      let indirect = translator.pointer(IOVirtualAddress(rawValue: descriptor.address),
                                                        length: Int(descriptor.length))
                else { return nil }
                table = UnsafeRawPointer(indirect)
                entries = Int(descriptor.length) / SplitDescriptor.byteCount
                index = 0
                continue
            }
            if descriptor.flags.contains(.next) {
                index = Int(descriptor.next)
                continue
            }
            guard descriptor.flags.contains(.write), descriptor.length > 0 else { return nil }
            let (last, overflow) = descriptor.address.addingReportingOverflow(UInt64(descriptor.length) - 1)
            guard !overflow, let user = translator.frontEndAddress(last, length: 1, access: .write) else { return nil }
            return translator.memory.pointer(user, length: 1)
        }
        return nil
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
