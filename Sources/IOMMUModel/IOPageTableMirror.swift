/// The IOTLB together with its `IOPageTable` mirror, kept in sync through one entry point for
/// UPDATE and INVALIDATE, and translated through the faster structure.
///
/// The IOTLB's range store stays authoritative. The page table holds a subset of its mappings
/// (those whose IOVA, size and user address are multiples of 4 KiB, below 2^48 and 2^52, within
/// the table limit) and agrees with the IOTLB on every byte of every page it maps. `update` and
/// `invalidate` preserve that: whatever the page table cannot mirror exactly, it forgets.
/// `translate` walks the page table first; only a miss there (a hole, or a mapping the table
/// does not hold) is answered by the IOTLB. `IOPageTableMirrorCache` puts a per-queue last-hit
/// cache in front.
public struct IOPageTableMirror: Sendable {
    /// The authoritative IOTLB.
    public private(set) var iotlb: IOTLB
    /// The page-table mirror.
    public private(set) var pageTable: IOPageTable
    /// UPDATEs the IOTLB accepted but the page table does not hold (statistics).
    public private(set) var unmirroredUpdates = 0

    /// - Parameter iotlbEntryLimit: the most entries the IOTLB holds (what a back end limits a
    ///   front end to); UPDATEs past it are refused.
    public init(iotlbEntryLimit: Int = .max, tableLimit: Int = IOPageTable.defaultTableLimit, preallocatedTables: Int = 64) {
        iotlb = IOTLB(entryLimit: iotlbEntryLimit)
        pageTable = IOPageTable(tableLimit: tableLimit, preallocatedTables: preallocatedTables)
    }

    /// Applies an UPDATE to the IOTLB, then mirrors it in the page table (or, if the page table
    /// cannot hold it, removes from the page table every page the UPDATE touched).
    ///
    /// - Throws: what `IOTLB.update` throws; then neither structure changed.
    public mutating func update(iova: UInt64, size: UInt64, userAddress: UInt64,
                                permission: IOMMUPermission) throws(IOTLBError) {
        try iotlb.update(iova: iova, size: size, userAddress: userAddress, permission: permission)
        do {
            try pageTable.map(iova: iova, size: size, userAddress: userAddress, permission: permission)
        } catch {
            unmirroredUpdates += 1
            forget(iova: iova, size: size)
        }
    }

    /// Applies an INVALIDATE to the IOTLB, then unmaps every page the IOTLB unmapped (which may
    /// be more than asked for, see `IOTLB.invalidate`) from the page table; returns that range.
    @discardableResult
    public mutating func invalidate(iova: UInt64, size: UInt64) -> ClosedRange<UInt64> {
        let unmapped = iotlb.invalidate(iova: iova, size: size)
        // The whole space gives size 0, which `forget` reads as the whole space.
        forget(iova: unmapped.lowerBound, size: unmapped.upperBound &- unmapped.lowerBound &+ 1)
        return unmapped
    }

    /// Translates through the page table; on a miss there, through the IOTLB. Same result as
    /// `IOTLB.translate` (segments contiguous in user space may come merged).
    public func translate(iova: UInt64, length: UInt64, access: IOMMUAccess,
                          into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation {
        let result = pageTable.translate(iova: iova, length: length, access: access, into: segments)
        if case .miss = result {
            return iotlb.translate(iova: iova, length: length, access: access, into: segments)
        }
        return result
    }

    /// Removes from the page table every page `[iova, iova + size)` touches (rounded outward to
    /// 4 KiB, clamped to 48 bits): exactly, splitting huge leaves, or, if the pool has no room
    /// to split, by dropping the leaves whole. Never leaves a stale leaf behind. Size 0 is the
    /// whole space, as for `IOTLB.invalidate`.
    mutating func forget(iova: UInt64, size: UInt64) {
        guard size != 0 else {
            pageTable.removeAll()
            return
        }
        guard iova < IOPageTable.iovaLimit else { return }
        let (end, overflow) = iova.addingReportingOverflow(size - 1)
        let last = min(overflow ? UInt64.max : end, IOPageTable.iovaLimit - 1)
        let pageMask = IOPageTable.pageSize - 1
        let first = iova & ~pageMask
        let lastByte = last | pageMask
        do {
            try pageTable.unmap(iova: first, size: lastByte - first + 1)
        } catch {
            pageTable.removeLeaves(overlapping: first...lastByte)
        }
    }
}
