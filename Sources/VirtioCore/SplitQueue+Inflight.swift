extension SplitQueue {
    /// Starts logging this queue in `region` (INFLIGHT_SHMFD). Call right after creating the
    /// queue, before popping anything: the region is checked and repaired against the ring's
    /// used->idx, the requests it records in flight are served first (in the order they were
    /// fetched), and `nextAvailableIndex` moves past them, whatever SET_VRING_BASE said.
    ///
    /// - Parameter regionBytes: bytes mapped at `region.base`.
    /// - Returns: what recovery found, for the caller's log.
    /// - Throws: `InflightError` for a region that breaks the layout's rules (nothing changed).
    @discardableResult
    public mutating func attachInflightRegion(_ region: SplitInflightRegion, regionBytes: Int) throws(InflightError) -> InflightRecovery {
        let recovery = try region.recover(regionBytes: regionBytes, usedRingIndex: usedIndex)
        guard recovery.resubmit.count <= layout.queueSize else { throw .tooManyInflight(recovery.resubmit.count) }
        inflight = InflightLog(region: region, recovery: recovery)
        nextAvailableIndex = recovery.nextAvailableIndex
        cachedAvailableIndex = recovery.nextAvailableIndex
        return recovery
    }

    /// Requests a recovery left to serve before the available ring.
    public var pendingResubmissions: Int {
        guard let inflight else { return 0 }
        return inflight.resubmit.count - inflight.resubmitted
    }
}
