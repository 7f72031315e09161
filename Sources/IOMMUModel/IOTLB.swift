/// The device IOTLB: IOVA ranges → front-end addresses with a permission, filled by the front
/// end's IOTLB UPDATE messages and cut by its INVALIDATEs (vhost-user "IOMMU support"; the
/// kernel's `vhost_iotlb` plays the same role for vhost-net, and a PCIe device with ATS keeps
/// such a cache of its IOMMU's translations).
///
/// Invariants: entries never overlap; every entry's IOVA range and user range fit in 64 bits;
/// every entry allows reading, writing or both; ``generation`` changes with every UPDATE and
/// INVALIDATE. IOVA arithmetic in ``translate(iova:length:access:into:)`` is modulo 2^64, as in
/// vhost's `translate_desc`: a buffer running past `UInt64.max` continues at IOVA 0.
public struct IOTLB: Sendable {
    /// The mappings, by IOVA.
    public private(set) var entries = RangeStore<IOTLBEntry>()
    /// Changes with every ``update(iova:size:userAddress:permission:)`` and
    /// ``invalidate(iova:size:)``, to a value no IOTLB has had: a cache that recorded a
    /// translation under one generation may reuse it exactly while the generation is the same.
    public private(set) var generation: UInt64
    /// The most entries this IOTLB holds (``IOTLBError/entryLimitReached(limit:)`` past it).
    public let entryLimit: Int

    /// An empty IOTLB without an entry limit.
    public init() {
        self.init(entryLimit: .max)
    }

    /// An empty IOTLB holding at most `entryLimit` entries (a negative limit counts as 0): the
    /// bound a back end facing an untrusted front end needs on the memory UPDATEs can make it use.
    public init(entryLimit: Int) {
        self.entryLimit = max(entryLimit, 0)
        generation = UniqueNumber.next()
    }

    /// Maps `size` bytes at `iova` to `userAddress` with `permission` (an IOTLB UPDATE),
    /// replacing whatever part of earlier entries it covers; those keep their other parts.
    ///
    /// - Throws: ``IOTLBError``; the IOTLB is unchanged then.
    public mutating func update(iova: UInt64, size: UInt64, userAddress: UInt64, permission: IOMMUPermission) throws(IOTLBError) {
        guard size > 0 else { throw .emptyRange }
        let (last, iovaWraps) = iova.addingReportingOverflow(size - 1)
        guard !iovaWraps else { throw .iovaRangeWraps(iova: iova, size: size) }
        guard !userAddress.addingReportingOverflow(size - 1).overflow else {
            throw .userRangeWraps(userAddress: userAddress, size: size)
        }
        guard !permission.isEmpty, IOMMUPermission.readWrite.isSuperset(of: permission) else {
            throw .invalidPermission(rawValue: permission.rawValue)
        }
        let range = iova...last
        // An overwrite can split one entry in two, so only count exactly near the limit.
        if entries.count >= entryLimit - 2, entryCount(afterStoring: range) > entryLimit {
            throw .entryLimitReached(limit: entryLimit)
        }
        entries.store(range, IOTLBEntry(userAddress: userAddress, permission: permission))
        generation = UniqueNumber.next()
    }

    /// Unmaps `size` bytes at `iova` (an IOTLB INVALIDATE); entries partly inside keep the rest.
    ///
    /// Size 0 invalidates the whole IOVA space: QEMU computes the size as `addr_mask + 1`,
    /// which is 0 when a device-IOTLB flush covers all 2^64 bytes (the kernel's vhost refuses
    /// size 0 with -EINVAL, DPDK ignores it; dropping everything is the answer that can never
    /// leave a stale translation). A range running past `UInt64.max` is cut there.
    ///
    /// Cutting the middle out of an entry leaves two: at ``entryLimit`` the part of that entry
    /// above the range is dropped too, so that INVALIDATEs cannot take the IOTLB past its limit
    /// (the kernel's vhost drops every entry an INVALIDATE touches, whole). Dropping more is
    /// safe: the device misses there and the front end sends the UPDATE again.
    ///
    /// - Returns: the IOVAs unmapped (the range asked for, or more).
    @discardableResult
    public mutating func invalidate(iova: UInt64, size: UInt64) -> ClosedRange<UInt64> {
        var range: ClosedRange<UInt64>
        if size == 0 {
            range = 0...UInt64.max
        } else {
            let (last, wraps) = iova.addingReportingOverflow(size - 1)
            range = iova...(wraps ? UInt64.max : last)
        }
        if entries.count >= entryLimit, let (entry, _) = entries.lookup(range.lowerBound),
           entry.lowerBound < range.lowerBound, entry.upperBound > range.upperBound {
            range = range.lowerBound...entry.upperBound
        }
        entries.erase(range)
        generation = UniqueNumber.next()
        return range
    }

    /// Translates `length` bytes at `iova` for `access` into front-end segments, written to
    /// the front of `segments`. Adjacent entries whose user addresses continue each other give
    /// one segment.
    ///
    /// Returns ``IOTLBTranslation/miss(iova:)`` at the first unmapped byte and
    /// ``IOTLBTranslation/permissionFault(iova:needed:)`` at the first byte whose entry does not
    /// allow `access`, whichever comes first in the buffer.
    public func translate(
        iova: UInt64,
        length: UInt64,
        access: IOMMUAccess,
        into segments: UnsafeMutableBufferPointer<IOTLBSegment>
    ) -> IOTLBTranslation {
        var produced = 0
        var cursor = iova
        var remaining = length
        while remaining > 0 {
            guard let (range, entry) = entries.lookup(cursor) else { return .miss(iova: cursor) }
            guard entry.permission.allows(access) else { return .permissionFault(iova: cursor, needed: access) }
            // Bytes of the entry from `cursor` on, minus one (so the whole space fits).
            let available = range.upperBound - cursor
            let taken = remaining - 1 <= available ? remaining : available + 1
            let userAddress = entry.userAddress + (cursor - range.lowerBound)
            if produced > 0, Self.continues(segments[produced - 1], at: userAddress) {
                segments[produced - 1].length += taken
            } else {
                guard produced < segments.count else { return .needsMoreSegments }
                segments[produced] = IOTLBSegment(userAddress: userAddress, length: taken)
                produced += 1
            }
            remaining -= taken
            cursor &+= taken
        }
        return .translated(segmentCount: produced)
    }

    /// Whether `segment` ends right before `userAddress` (and not at the top of the space).
    private static func continues(_ segment: IOTLBSegment, at userAddress: UInt64) -> Bool {
        let (end, overflow) = segment.userAddress.addingReportingOverflow(segment.length)
        return !overflow && end == userAddress
    }

    /// How many entries there would be after storing `range`: the entries it covers go, an
    /// entry sticking out on either side leaves a piece there. O(entries covered).
    private func entryCount(afterStoring range: ClosedRange<UInt64>) -> Int {
        var count = entries.count + 1
        entries.forEach(intersecting: range) { entry, _ in
            count -= 1
            if entry.lowerBound < range.lowerBound { count += 1 }
            if entry.upperBound > range.upperBound { count += 1 }
        }
        return count
    }
}
