import VirtioCore

/// Dirty logging for live migration (LOG_ALL): every page the device writes is marked in the
/// front end's log after the write and before the used index that publishes it. Off, it costs
/// one nil check per completion.
extension QueueWorker {
    /// Pushes a used element for `head` after marking the pages its request let the device
    /// write. - Returns: false when `head` is not outstanding (nothing pushed or marked).
    @inline(__always)
    func pushUsed(_ queue: inout SplitQueue, head: UInt16, writtenLength: UInt32) -> Bool {
        if dirtyLog != nil { logWrites(of: head, in: queue) }
        return queue.pushUsed(head: head, writtenLength: writtenLength)
    }

    /// Marks every device-writable buffer of request `head`, found by walking its chain again
    /// (the chain was not kept: see `SplitQueue.walkOutstanding`). A buffer the device may
    /// not access (behind a vIOMMU) was not written and is skipped. A chain the driver broke
    /// while it was served cannot be walked: its pages are not marked, which can only cost the
    /// guest the bytes it hid from us, and it is said once.
    private func logWrites(of head: UInt16, in queue: SplitQueue) {
        guard let log = dirtyLog else { return }
        log.prepareToMark()
        let chain: DescriptorChain?
        do {
            if let translator {
                translator.startRequest()
                chain = try queue.walkOutstanding(head: head, translator: BestEffortTranslator(translator))
            } else {
                chain = try queue.walkOutstanding(head: head, translator: memory)
            }
        } catch {
            noteUnloggedWrite("the driver changed a request's chain while it was served: \(error)")
            return
        }
        guard let chain else { return }
        for segment in chain.writable where segment.isAccessible {
            if !log.mark(host: segment.pointer, length: segment.length, in: chain.memory) {
                noteUnloggedWrite("a buffer lies past the dirty log")
            }
        }
    }

    /// Marks the used ring at `log_guest_addr` (when the ring's LOG flag is set) after the
    /// worker wrote it: used elements and index on publication, `avail_event` and flags when
    /// notifications change.
    @inline(__always)
    func logUsedRing() {
        if dirtyLog != nil { markUsedRing() }
    }

    private func markUsedRing() {
        guard let log = dirtyLog, usedRingLogAddress != nil else { return }
        if usedRingLogPieces == nil { usedRingLogPieces = findUsedRingLogPieces() }
        guard let pieces = usedRingLogPieces else { return }
        log.prepareToMark()
        for piece in pieces where !log.mark(guestPhysical: piece.address, length: piece.length) {
            noteUnloggedWrite("the used ring lies past the dirty log")
        }
    }

    /// The guest-physical pieces of the used ring at `log_guest_addr`: the address itself
    /// without a vIOMMU; behind one, `log_guest_addr` is an IOVA (QEMU passes the ring's
    /// address as the driver gave it), translated through the IOTLB to host memory and back
    /// to guest-physical through the memory table. Nil when it is not mapped (yet): retried
    /// at the next publication.
    private func findUsedRingLogPieces() -> [(address: UInt64, length: UInt64)]? {
        guard let address = usedRingLogAddress, let queue = ring else { return nil }
        let length = queue.usedRingByteCount
        guard let translator else { return [(address, UInt64(length))] }
        return withUnsafeTemporaryAllocation(of: BufferSegment.self, capacity: IOVATranslator.scratchCapacity) { buffer in
            guard case .translated(let count) = translator.segments(
                IOVirtualAddress(rawValue: address), length: length, deviceWrites: true, into: buffer) else {
                return nil
            }
            var pieces: [(address: UInt64, length: UInt64)] = []
            for segment in buffer[0..<count] {
                guard let (start, _) = memory.guestPhysicalAddress(ofHost: segment.pointer) else { return nil }
                pieces.append((start.rawValue, UInt64(segment.length)))
            }
            return pieces
        }
    }

    /// Says once per ring start that some write could not be logged, and why.
    private func noteUnloggedWrite(_ reason: String) {
        guard !unloggedWriteNoted else { return }
        unloggedWriteNoted = true
        logger.warning("a write the device made is not in the dirty log; a migration may miss it",
                       metadata: ["reason": "\(reason)"])
    }
}
