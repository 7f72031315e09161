import Logging
import VhostSystem
import VirtioCore
import VirtioSpec

/// The control plane's commands, performed between batches: a new IOTLB or memory table at
/// once, the others with no request outstanding.
extension QueueWorker {
    func perform(_ command: WorkerCommand) {
        switch command {
        case .start(let configuration):
            start(configuration)
        case .stop(let completion):
            let index = ring?.nextAvailableIndex ?? configuration?.nextAvailableIndex ?? 0
            if let kick { try? epoll.remove(kick.rawValue) }
            kick = nil
            ring = nil
            unwatchCompletions()
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
            // Answered once the replaced table is let go (unmapping what it alone held), or
            // later by `retiredMemory` when requests still use it.
            usedRingLogPieces = nil
            switchMemory(to: newMemory, answering: completion)?.complete()
        case .setIOTLB(let iotlb, let invalidated, let completion):
            guard translator != nil else {
                completion?.complete()
                return
            }
            replaceIOTLB(iotlb)
            usedRingLogPieces = nil
            if let completion {
                if let invalidated {
                    pins.invalidate(invalidated, acknowledging: completion)
                } else {
                    completion.complete()
                }
            }
        case .setDirtyLogging(let logging, let completion):
            apply(logging)
            completion.complete()
        case .exit:
            running = false
        }
    }

    /// Makes `newMemory` the table requests are translated through and moves the ring onto it.
    /// - Returns: the completion to fire now (nothing in flight uses the replaced table, which
    ///   this function's return lets go), or nil when `retiredMemory` keeps it.
    private func switchMemory(to newMemory: GuestMemory, answering completion: CommandCompletion) -> CommandCompletion? {
        let replaced = memory
        memory = newMemory
        if let translator {
            translator.replace(memory: newMemory)
            ringViews = [:]  // their pages may belong to a region that went
            resolveIOVARing()
        } else if let configuration, let current = ring {
            relocate(configuration, keeping: current)
        }
        return retiredMemory.retire(replaced, answering: completion)
    }

    /// What the ring logs from now on (`+DirtyLogging`).
    private func apply(_ logging: DirtyLogging) {
        dirtyLog = logging.log
        usedRingLogAddress = logging.usedRingAddress
        usedRingLogPieces = nil
        unloggedWriteNoted = false
    }

    private func start(_ configuration: RingStartConfiguration) {
        if let kick { try? epoll.remove(kick.rawValue) }
        self.configuration = configuration
        apply(configuration.dirtyLogging)
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
            prepareHandler(configuration)
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
            ring = SplitQueue(layout: layout, features: SplitQueue.Features(negotiated: configuration.features),
                              nextAvailableIndex: configuration.nextAvailableIndex,
                              maximumChainLength: device.maximumChainLength)
        } catch {
            ring = nil
            markBroken(error)
            return
        }
        attachInflight(configuration)
        prepareHandler(configuration)
        watchKick(configuration)
        // The driver may have queued requests (and kicked) before the ring started.
        workPending = !broken
    }

    /// The device's handler (made again when the ring's size changes: it may keep state per
    /// descriptor), the completion buffer for this ring's size, and epoll watching the
    /// handler's completion notifier.
    private func prepareHandler(_ configuration: RingStartConfiguration) {
        if handler == nil || handlerQueueSize != configuration.size {
            unwatchCompletions()
            handler = nil  // the old one goes first: its engine and its log line
            handler = device.makeRequestHandler(queueIndex: queueIndex, queueSize: configuration.size,
                                                negotiatedFeatures: configuration.features)
            handlerQueueSize = configuration.size
        }
        guard let handler else { return }
        completions = CompletedRequests(capacity: configuration.size)
        // Pins exist only behind a vIOMMU: without one, no slot is made.
        pins = InFlightPins(queueSize: configuration.iotlb == nil ? 0 : configuration.size)
        retiredMemory.prepare(queueSize: configuration.size)
        unwatchCompletions()
        if let notifier = handler.completionNotifier {
            do {
                try epoll.add(notifier, token: Self.completionToken)
                watchedCompletionNotifier = notifier
            } catch {
                // The handler's own descriptor: without it, its requests would never complete.
                broken = true
                logger.error("the handler's completion notifier cannot be watched; queue stopped",
                             metadata: ["error": "\(error)"])
                try? errorNotifier?.signal()
            }
        }
    }

    func unwatchCompletions() {
        if let notifier = watchedCompletionNotifier { try? epoll.remove(notifier) }
        watchedCompletionNotifier = nil
    }

    /// With an inflight area, the ring logs into its region: recovery first (what a previous
    /// instance left in flight is served before new requests), then every fetch and completion.
    /// A region the ring cannot use (the area covers fewer queues, the region is too small for
    /// the ring or breaks the layout's rules) is left alone and the queue is served without
    /// crash recovery: the guest's I/O goes on, and the log says why the queue is not logged.
    func attachInflight(_ configuration: RingStartConfiguration) {
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
            // Kept, stopped: its requests in flight still complete into it.
            markBroken(error)
        }
    }
}
