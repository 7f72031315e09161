import VirtioSpec

extension SplitQueue {
    /// Pops the next available chain, or returns nil when the driver has made none available.
    ///
    /// Descriptor addresses are guest-physical. See `popAvailable(translator:)`.
    /// - Throws: a `VirtqueueError` when the ring is malformed; the queue is then broken.
    public mutating func popAvailable(memory: GuestMemory) throws(VirtqueueError) -> DescriptorChain? {
        try popAvailable(translator: memory)
    }

    /// Pops the next available chain, translating descriptor addresses with `translator`.
    ///
    /// Reads avail->idx with acquire semantics (checking it moved at most the queue size), reads
    /// the head, and walks the chain into the queue's segment buffer, applying every rule listed
    /// in docs/virtqueues.md. The returned chain is valid until the next call. Allocates nothing.
    /// - Throws: a `VirtqueueError` when the ring is malformed. The queue is then broken: the
    ///   same error is thrown again on every later call and `nextAvailableIndex` stays put.
    public mutating func popAvailable<Translator: DescriptorAddressTranslator>(
        translator: Translator
    ) throws(VirtqueueError) -> DescriptorChain? {
        if let brokenReason { throw brokenReason }
        do throws(VirtqueueError) {
            // Requests a previous instance fetched and never completed come first, in the
            // order it fetched them; they are already counted in nextAvailableIndex.
            // A walk that defers leaves the request where it was, to be walked again.
            if let log = inflight, log.resubmitted < log.resubmit.count {
                let head = log.resubmit[log.resubmitted]
                let chain = try walkChain(head: head, translator: translator)
                guard outstanding.insert(head) else { throw .headAlreadyOutstanding(head: head) }
                log.resubmitted += 1
                return chain
            }
            guard let head = try nextAvailableHead() else { return nil }
            let chain = try walkChain(head: head, translator: translator)
            guard outstanding.insert(head) else { throw .headAlreadyOutstanding(head: head) }
            nextAvailableIndex &+= 1
            if let log = inflight {
                log.region.recordFetch(head: head, counter: log.nextCounter)
                log.nextCounter &+= 1
            }
            return chain
        } catch {
            if error.consequence == .queueBroken { brokenReason = error }
            throw error
        }
    }

    /// Consumes the next request (a resubmission first, as `popAvailable` would) without
    /// walking it and returns its head, or nil when there is none: for a request that cannot
    /// even be walked to be failed (its indirect table faults behind a vIOMMU). The caller
    /// pushes the head to the used ring.
    public mutating func discardAvailable() throws(VirtqueueError) -> UInt16? {
        if let brokenReason { throw brokenReason }
        do throws(VirtqueueError) {
            if let log = inflight, log.resubmitted < log.resubmit.count {
                let head = log.resubmit[log.resubmitted]
                guard outstanding.insert(head) else { throw .headAlreadyOutstanding(head: head) }
                log.resubmitted += 1
                return head
            }
            guard let head = try nextAvailableHead() else { return nil }
            guard outstanding.insert(head) else { throw .headAlreadyOutstanding(head: head) }
            nextAvailableIndex &+= 1
            return head
        } catch {
            brokenReason = error
            throw error
        }
    }

    /// The head of the next available chain, or nil if there is none.
    mutating func nextAvailableHead() throws(VirtqueueError) -> UInt16? {
        if nextAvailableIndex == cachedAvailableIndex {
            // Acquire: pairs with the driver's barrier before its avail->idx store, so the ring
            // entries and descriptors it wrote before publishing are visible to the plain loads
            // below and in the walk.
            let current = RingMemory.loadAcquireUInt16(layout.availableRing, offset: SplitRing.availableIndexOffset)
            // Free-running 16-bit indices: the wrapping difference is the number of new entries.
            let pending = current &- nextAvailableIndex
            if pending == 0 { return nil }
            guard Int(pending) <= layout.queueSize else {
                throw .availableIndexJumped(previous: nextAvailableIndex, current: current, queueSize: layout.queueSize)
            }
            cachedAvailableIndex = current
        }
        let slot = Int(nextAvailableIndex & ringMask)
        // SAFETY: slot < queueSize, and the available ring spans 6 + 2·queueSize bytes (Layout).
        return RingMemory.loadUInt16(layout.availableRing, offset: SplitRing.availableEntryOffset(slot: slot))
    }
}
