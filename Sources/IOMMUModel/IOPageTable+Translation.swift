extension IOPageTable {
    /// Translates the buffer `[iova, iova + length)` for `access` by walking the table, with the
    /// IOTLB's result shape so the data path can use either structure.
    ///
    /// Leaves are visited in IOVA order; pieces whose user addresses are contiguous are merged
    /// into one segment (a buffer inside one mapping gives one segment whatever leaves map it),
    /// and a segment is claimed in `segments` when it starts, as the IOTLB does, so both give
    /// the same result wherever the table maps the buffer. A zero `length` translates to no
    /// segments. Never allocates; no overflow whatever the arguments (the walk stops at 2^48,
    /// below any wrap: the IOTLB, which wraps to IOVA 0 as vhost does, answers such buffers).
    ///
    /// - Returns: `.translated(segmentCount:)` with the segments written to the front of
    ///   `segments`; `.miss(iova:)` at the first byte no leaf maps (2^48 for a buffer running past
    ///   the addressable width); `.permissionFault(iova:needed:)` at the first byte whose leaf
    ///   lacks the permission `access` needs; `.needsMoreSegments` if `segments` is too short.
    ///   Whichever of these the walk meets first, in IOVA order.
    public func translate(iova: UInt64, length: UInt64, access: IOMMUAccess,
                          into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation {
        let needed = access == .read ? IOPageTableEntry.readBit : IOPageTableEntry.writeBit
        var current = iova
        var remaining = length
        var count = 0
        while remaining != 0 {
            guard let (entry, level) = leaf(containing: current) else { return .miss(iova: current) }
            guard entry & needed != 0 else { return .permissionFault(iova: current, needed: access) }
            let leafMask = Self.span(level) &- 1
            let offset = current & leafMask
            // current < 2^48 and frames < 2^52: the sums below stay far from 2^64.
            let piece = min(leafMask - offset + 1, remaining)
            let address = (entry & IOPageTableEntry.frameMask) | offset
            if count > 0 && segments[count - 1].userAddress + segments[count - 1].length == address {
                segments[count - 1].length += piece
            } else {
                guard count < segments.count else { return .needsMoreSegments }
                segments[count] = IOTLBSegment(userAddress: address, length: piece)
                count += 1
            }
            current += piece
            remaining -= piece
        }
        return .translated(segmentCount: count)
    }
}
