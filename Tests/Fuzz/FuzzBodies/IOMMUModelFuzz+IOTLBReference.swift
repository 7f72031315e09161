import IOMMUModel

/// The IOTLB's rules on the plain model: what an UPDATE must be refused for, and what a
/// translation must answer.
extension IOMMUModelFuzz.RangeReference where Value == IOTLBEntry {
    /// The error `IOTLB.update` must throw, in its documented order, or nil; `stored` is the
    /// model after the UPDATE when it is accepted.
    func update(iova: UInt64, size: UInt64, userAddress: UInt64, permission: IOMMUPermission,
                entryLimit: Int) -> (error: IOTLBError?, stored: Self) {
        if size == 0 { return (.emptyRange, self) }
        if UInt128(iova) + UInt128(size) - 1 > UInt128(UInt64.max) { return (.iovaRangeWraps(iova: iova, size: size), self) }
        if UInt128(userAddress) + UInt128(size) - 1 > UInt128(UInt64.max) {
            return (.userRangeWraps(userAddress: userAddress, size: size), self)
        }
        if permission.rawValue == 0 || permission.rawValue > 3 { return (.invalidPermission(rawValue: permission.rawValue), self) }
        var stored = self
        stored.store(iova...(iova + (size - 1)), IOTLBEntry(userAddress: userAddress, permission: permission))
        if stored.count > entryLimit { return (.entryLimitReached(limit: entryLimit), self) }
        return (nil, stored)
    }

    /// The bytes an INVALIDATE of `size` bytes at `iova` unmaps: all of them for size 0, a
    /// range running past the top cut there; and when cutting the middle out of an entry would
    /// leave more entries than `entryLimit`, the rest of that entry above the range too.
    func invalidatedRange(iova: UInt64, size: UInt64, entryLimit: Int) -> ClosedRange<UInt64> {
        guard size != 0 else { return 0...UInt64.max }
        let range = iova...UInt64(min(UInt128(iova) + UInt128(size) - 1, UInt128(UInt64.max)))
        var erased = self
        erased.erase(range)
        guard erased.count > entryLimit, let split = lookup(range.lowerBound) else { return range }
        return range.lowerBound...split.range.upperBound
    }

    /// The answer a translation must give: the buffer walked byte range by byte range in
    /// 128-bit arithmetic, wrapping at 2^64; pieces whose user addresses continue share a
    /// segment; a piece needing a segment beyond `capacity` ends the walk.
    func translate(iova: UInt64, length: UInt64, access: IOMMUAccess, capacity: Int) -> (IOTLBTranslation, [IOTLBSegment]) {
        var segments: [IOTLBSegment] = []
        var position = UInt128(iova)
        let end = UInt128(iova) + UInt128(length)  // exclusive; may pass 2^64
        while position < end {
            let address = UInt64(truncatingIfNeeded: position)
            guard let entry = lookup(address) else { return (.miss(iova: address), []) }
            guard entry.value.permission.allows(access) else { return (.permissionFault(iova: address, needed: access), []) }
            let pieceEnd = min(end, position + UInt128(entry.range.upperBound - address) + 1)
            let user = entry.value.userAddress + (address - entry.range.lowerBound)
            let pieceLength = UInt64(pieceEnd - position)
            if let last = segments.last, UInt128(last.userAddress) + UInt128(last.length) == UInt128(user) {
                segments[segments.count - 1].length += pieceLength
            } else {
                guard segments.count < capacity else { return (.needsMoreSegments, []) }
                segments.append(IOTLBSegment(userAddress: user, length: pieceLength))
            }
            position = pieceEnd
        }
        return (.translated(segmentCount: segments.count), segments)
    }

    /// Whether two neighbouring entries describe one mapping (touching IOVAs, continuing user
    /// addresses, the same permission).
    static func continues(_ first: Entry, _ second: Entry) -> Bool {
        first.range.upperBound != .max && first.range.upperBound + 1 == second.range.lowerBound
            && first.value.permission == second.value.permission
            && UInt128(first.value.userAddress) + UInt128(first.range.upperBound - first.range.lowerBound) + 1
                == UInt128(second.value.userAddress)
    }
}
