/// A queue's inflight log while it runs: the region, the next fetch counter, the heads pushed
/// since the last publish, and what a recovery left to resubmit. Allocated once when the ring
/// starts; nothing here allocates per request.
final class InflightLog {
    let region: SplitInflightRegion
    var nextCounter: UInt64
    /// Heads pushed to the used ring and not yet published (at most the queue size).
    let batch: UnsafeMutableBufferPointer<UInt16>
    var batchCount = 0
    /// Heads recorded in flight by a previous instance, served before the available ring.
    let resubmit: [UInt16]
    var resubmitted = 0

    init(region: SplitInflightRegion, recovery: InflightRecovery) {
        self.region = region
        nextCounter = recovery.nextCounter
        resubmit = recovery.resubmit
        batch = .allocate(capacity: region.queueSize)
    }

    deinit { batch.deallocate() }
}
