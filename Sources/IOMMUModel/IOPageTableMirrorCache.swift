/// A per-queue last-hit cache in front of an `IOPageTableMirror`: the page-table leaf (or, for
/// what the table does not mirror, the IOTLB entry) that held the previous buffer's first byte,
/// with the IOTLB generation it came from.
///
/// A buffer inside the cached range, with its permission, under the same generation, is
/// answered as one segment without a walk. Anything else walks the page table (falling back to
/// the IOTLB) and refills the cache: a refill costs one walk, not a range-store search, so a
/// workload that keeps missing the cache pays little for it, unlike `IOTLBCache`, whose refill
/// is a lookup in the range store.
///
/// Never stale: a cached leaf agrees with the IOTLB on every byte at the generation it was
/// recorded under (the mirror's invariant), every UPDATE and INVALIDATE gives the IOTLB a new
/// process-wide unique generation, and a hit requires the mirror's current generation to be the
/// recorded one, whichever mirror value the cache is handed.
public struct IOPageTableMirrorCache: Sendable {
    /// The IOTLB generation the range came from; 0, never an IOTLB generation, when empty.
    @usableFromInline var generation: UInt64 = 0
    /// The cached range, inclusive.
    @usableFromInline var first: UInt64 = 0
    @usableFromInline var last: UInt64 = 0
    /// The user address of `first`.
    @usableFromInline var userAddress: UInt64 = 0
    @usableFromInline var permission: IOMMUPermission = []

    /// An empty cache.
    public init() {}

    /// `IOPageTableMirror.translate(iova:length:access:into:)` with a fast path for a buffer
    /// inside the cached leaf or entry. Same results.
    @inlinable
    public mutating func translate(_ mirror: IOPageTableMirror, iova: UInt64, length: UInt64, access: IOMMUAccess,
                                   into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation {
        if generation == mirror.iotlb.generation, iova >= first, iova <= last, length > 0, length - 1 <= last - iova,
           permission.allows(access), !segments.isEmpty {
            segments[0] = IOTLBSegment(userAddress: userAddress &+ (iova - first), length: length)
            return .translated(segmentCount: 1)
        }
        return translateAndRemember(mirror, iova: iova, length: length, access: access, into: segments)
    }

    /// The slow path: one walk; remember the leaf (or the IOTLB entry) holding `iova`, answer a
    /// buffer inside that leaf directly, anything else through the mirror.
    @usableFromInline
    mutating func translateAndRemember(_ mirror: IOPageTableMirror, iova: UInt64, length: UInt64,
                                       access: IOMMUAccess,
                                       into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation {
        if let (entry, level) = mirror.pageTable.leaf(containing: iova) {
            let mask = IOPageTable.span(level) - 1
            generation = mirror.iotlb.generation
            first = iova & ~mask
            last = first | mask
            userAddress = entry & IOPageTableEntry.frameMask
            permission = IOPageTableEntry(rawValue: entry).permission
            if length > 0, length - 1 <= last - iova, permission.allows(access), !segments.isEmpty {
                segments[0] = IOTLBSegment(userAddress: userAddress | (iova & mask), length: length)
                return .translated(segmentCount: 1)
            }
            return mirror.translate(iova: iova, length: length, access: access, into: segments)
        }
        if let (range, entry) = mirror.iotlb.entries.lookup(iova) {
            generation = mirror.iotlb.generation
            first = range.lowerBound
            last = range.upperBound
            userAddress = entry.userAddress
            permission = entry.permission
        }
        return mirror.iotlb.translate(iova: iova, length: length, access: access, into: segments)
    }
}
