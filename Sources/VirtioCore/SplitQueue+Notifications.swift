import VirtioSpec

extension SplitQueue {
    /// Whether the driver needs a used-buffer notification (a call) for what was published since
    /// the previous decision. Call it once after `publishUsed()`; a true answer means signal the
    /// call eventfd.
    ///
    /// With EVENT_IDX: notify if used->idx moved past `used_event` since the previous decision
    /// (`vring_need_event(used_event, new, old)`); the very first decision always notifies,
    /// since the driver may be waiting for entries published before this queue object existed.
    /// Without it: notify unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT, and never when nothing
    /// was published since the previous decision.
    public mutating func needsNotification() -> Bool {
        // Full fence: orders our used->idx store (publishUsed) before the load of used_event or
        // avail->flags below. Without it the load could complete first and see an old value,
        // while the driver, which stores used_event and then re-reads used->idx after its own
        // full barrier, sees our old index: both would go to sleep and the wakeup would be lost.
        RingMemory.fullFence()
        let new = usedIndex
        let old = signalledUsedIndex
        let wasValid = signalledUsedIndexValid
        signalledUsedIndex = new
        signalledUsedIndexValid = true
        if features.contains(.eventIndex) {
            guard wasValid else { return true }
            let event = RingMemory.loadUInt16(layout.availableRing,
                                              offset: SplitRing.usedEventOffset(queueSize: layout.queueSize))
            return SplitRing.needsEvent(event: event, new: new, old: old)
        }
        if wasValid && new == old { return false }
        let flags = RingMemory.loadUInt16(layout.availableRing, offset: SplitRing.availableFlagsOffset)
        return flags & SplitRing.availableFlagNoInterrupt == 0
    }

    /// Asks the driver to kick again when it makes buffers available, then re-checks the ring.
    ///
    /// With EVENT_IDX: writes `avail_event` = `nextAvailableIndex` (a kick for the very next
    /// buffer). Without it: clears VIRTQ_USED_F_NO_NOTIFY. Returns true if buffers arrived in the
    /// meantime: the worker must then keep processing instead of sleeping, because the driver may
    /// have read the old suppression state and not kicked.
    public mutating func enableNotifications() -> Bool {
        if features.contains(.eventIndex) {
            RingMemory.storeUInt16(nextAvailableIndex, layout.usedRing,
                                   offset: SplitRing.availableEventOffset(queueSize: layout.queueSize))
        } else {
            RingMemory.storeUInt16(0, layout.usedRing, offset: SplitRing.usedFlagsOffset)
        }
        // Full fence: orders the store above before the load of avail->idx below. It pairs with
        // the driver's full barrier between its avail->idx store and its read of avail_event or
        // used->flags: either the driver sees our store and kicks, or we see its new index here.
        RingMemory.fullFence()
        let current = RingMemory.loadAcquireUInt16(layout.availableRing, offset: SplitRing.availableIndexOffset)
        return current != nextAvailableIndex
    }

    /// Tells the driver that kicks are not needed while the worker is processing.
    ///
    /// Without EVENT_IDX this sets VIRTQ_USED_F_NO_NOTIFY. With EVENT_IDX it does nothing: the
    /// `avail_event` written by the last `enableNotifications` is left behind as the driver moves
    /// on, so the driver does not kick again until it is re-armed (or 2^16 entries later, which is
    /// merely a spurious kick).
    /// Whether the driver has made requests available that `popAvailable` has not taken yet:
    /// one acquire load of avail->idx, for polling without notifications.
    public var hasPendingAvailable: Bool {
        RingMemory.loadAcquireUInt16(layout.availableRing, offset: SplitRing.availableIndexOffset) != nextAvailableIndex
    }

    public mutating func disableNotifications() {
        guard !features.contains(.eventIndex) else { return }
        RingMemory.storeUInt16(SplitRing.usedFlagNoNotify, layout.usedRing, offset: SplitRing.usedFlagsOffset)
    }
}
