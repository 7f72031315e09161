import VirtioSpec

extension SplitQueue {
    /// Writes a used element for the chain `head`, with `writtenLength` bytes written into its
    /// device-writable buffers. Not visible to the driver until `publishUsed()`, so a batch of
    /// completions costs one index store and one notification decision. Requests may be pushed
    /// in any order.
    /// - Returns: false, writing nothing, when `head` is not outstanding (never popped, or
    ///   already pushed): a device's completion for a request this queue did not give it.
    @discardableResult
    public mutating func pushUsed(head: UInt16, writtenLength: UInt32) -> Bool {
        guard outstanding.remove(head) else { return false }
        let slot = Int(pendingUsedIndex & ringMask)
        let element = SplitRing.usedElementOffset(slot: slot)
        // SAFETY: slot < queueSize, and the used ring spans 6 + 8·queueSize bytes (Layout).
        // Plain stores: the release store in publishUsed orders them before the index.
        RingMemory.storeUInt32(UInt32(head), layout.usedRing, offset: element)
        RingMemory.storeUInt32(writtenLength, layout.usedRing, offset: element + 4)
        pendingUsedIndex &+= 1
        if let log = inflight, log.batchCount < log.batch.count {
            log.region.linkIntoBatch(head: head)
            log.batch[log.batchCount] = head
            log.batchCount += 1
        }
        return true
    }

    /// Makes every element pushed since the last call visible to the driver by storing used->idx.
    public mutating func publishUsed() {
        guard pendingUsedIndex != usedIndex else { return }
        // Release: the used elements written by pushUsed, and the data the device wrote into
        // the buffers, become visible to the driver no later than the new index.
        RingMemory.storeReleaseUInt16(pendingUsedIndex, layout.usedRing, offset: SplitRing.usedIndexOffset)
        usedIndex = pendingUsedIndex
        // The driver can see the batch: its heads are no longer in flight.
        if let log = inflight {
            for index in 0..<log.batchCount { log.region.clearInflight(head: log.batch[index]) }
            log.batchCount = 0
            log.region.storeUsedIndex(usedIndex)
        }
    }

    /// Elements pushed but not yet published.
    public var unpublishedUsedCount: Int {
        Int(pendingUsedIndex &- usedIndex)
    }
}
