import Logging
import VhostSystem
import VirtioCore

/// Taking requests from the ring, handing them to the device, and publishing their completions.
extension QueueWorker {
    /// Serves what the ring holds, through the translator of its address space.
    /// - Returns: whether more work may be waiting.
    func serve() -> Bool {
        if let translator {
            guard iovaRingReady() else { return false }
            return serveBatch(translator)
        }
        return serveBatch(memory)
    }

    /// Takes up to `batchLimit` requests, submits each to the handler, publishes those that
    /// completed at once and notifies the driver once. One loop for both address spaces: a
    /// guest-physical translator never defers; an IOVA translator defers a request whose
    /// buffers miss (the queue, and only it, waits for the UPDATE) or fault (the request fails
    /// without its buffers being touched).
    private func serveBatch<Translator: DescriptorAddressTranslator>(_ translator: Translator) -> Bool {
        guard enabled, !broken, var queue = ring, let handler else { return false }
        var taken = 0
        var failure: VirtqueueError?
        var waiting = false
        // A command (stop, exit on SIGTERM, a new memory table or IOTLB) ends the batch between
        // requests: what was taken is finished, nothing more is taken before it.
        while taken < Self.batchLimit, !mailbox.hasCommands {
            self.translator?.startRequest()
            let chain: DescriptorChain
            do {
                guard let popped = try queue.popAvailable(translator: translator) else { break }
                chain = popped
            } catch {
                if error.consequence == .queueBroken {
                    failure = error
                    break
                }
                switch deferral() {
                case .wait:
                    waiting = true
                case .fail:
                    if let error = failNext(&queue, handler: handler, translator: translator) {
                        failure = error
                    } else {
                        taken += 1
                    }
                }
                if waiting || failure != nil { break }
                continue
            }
            pendingMiss = nil
            taken += 1
            if refused {
                _ = pushUsed(&queue, head: chain.headIndex, writtenLength: handler.fail(chain))
                continue
            }
            guard pinBuffers(of: chain.headIndex) else {
                logger.error("a request uses an IOVA range an INVALIDATE is removing; request fails",
                             metadata: ["head": "\(chain.headIndex)"])
                _ = pushUsed(&queue, head: chain.headIndex, writtenLength: handler.fail(chain))
                continue
            }
            switch handler.submit(chain, token: RequestToken(head: chain.headIndex)) {
            case .completed(let writtenLength):
                pins.release(head: chain.headIndex)
                _ = pushUsed(&queue, head: chain.headIndex, writtenLength: writtenLength)
            case .inFlight:
                retiredMemory.submitted(head: chain.headIndex)
            }
        }
        if taken > 0 { handler.submitQueued() }
        publish(&queue)
        ring = queue
        if let failure {
            markBroken(failure)
            return false
        }
        if waiting { return false }
        if taken == Self.batchLimit { return true }
        let worked = taken > 0 || completedSinceBatch
        completedSinceBatch = false
        return finishBatch(worked: worked)
    }

    /// Fails the next request without serving it: walked by the same walker over a translator
    /// that turns what faults into inaccessible segments, then handed to the device's `fail`,
    /// which writes its error status where it can. A request whose indirect table itself
    /// faults cannot be walked: it is used with nothing written.
    /// - Returns: the ring's error if the ring itself is broken.
    private func failNext<Translator: DescriptorAddressTranslator>(
        _ queue: inout SplitQueue, handler: any VirtqueueRequestHandler, translator: Translator
    ) -> VirtqueueError? {
        do {
            if let chain = try queue.popAvailable(translator: BestEffortTranslator(translator)) {
                _ = pushUsed(&queue, head: chain.headIndex, writtenLength: handler.fail(chain))
            }
            return nil
        } catch where error.consequence == .retryLater {
            do {
                // Nothing was written: only the used ring is, logged when published.
                if let head = try queue.discardAvailable() { queue.pushUsed(head: head, writtenLength: 0) }
                return nil
            } catch {
                return error
            }
        } catch {
            return error
        }
    }

    /// Behind a vIOMMU, pins the IOVA ranges of the request just walked while it is served, so
    /// an INVALIDATE of them waits until it completes. False when an INVALIDATE still waiting
    /// removes one of them (nothing is pinned then).
    private func pinBuffers(of head: UInt16) -> Bool {
        guard let translator else { return true }
        return pins.pin(head: head, ranges: translator.requestRanges)
    }

    /// Takes the requests the handler completed since the last time and publishes them.
    func reapCompletions() {
        guard let handler, var queue = ring else { return }
        completions.removeAll()
        handler.reapCompletions(into: completions)
        for index in 0..<completions.count {
            let (token, writtenLength) = completions.entry(index)
            if pushUsed(&queue, head: token.head, writtenLength: writtenLength) {
                pins.release(head: token.head)
                retiredMemory.completed(head: token.head)
            } else {
                logger.error("the device completed a request that is not outstanding; ignored",
                             metadata: ["head": "\(token.head)"])
            }
        }
        if completions.overflowed > 0 {
            logger.error("the device reported more completions than requests outstanding; extra ignored",
                         metadata: ["extra": "\(completions.overflowed)"])
        }
        if completions.count > 0 {
            completedSinceBatch = true
            workPending = true
        }
        publish(&queue)
        ring = queue
    }

    /// Makes what was pushed visible to the driver and notifies it if it wants.
    private func publish(_ queue: inout SplitQueue) {
        guard queue.unpublishedUsedCount > 0 else { return }
        queue.publishUsed()
        logUsedRing()
        if queue.needsNotification() { try? call?.signal() }
    }
}
