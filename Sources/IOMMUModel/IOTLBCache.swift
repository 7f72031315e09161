/// A per-queue last-hit cache in front of an ``IOTLB``: the entry that translated the previous
/// buffer's first byte, kept with the IOTLB generation it came from.
///
/// It can never answer from a stale entry: a hit requires the IOTLB's current generation to
/// be the recorded one, and every UPDATE or INVALIDATE gives the IOTLB a new generation drawn
/// from a process-wide counter, so even a cache handed a different IOTLB value (a copy changed
/// separately) misses instead of using an entry that value does not have.
public struct IOTLBCache: Sendable {
    /// The generation the cached entry came from; 0, never an IOTLB generation, when empty.
    @usableFromInline var generation: UInt64 = 0
    @usableFromInline var first: UInt64 = 0
    @usableFromInline var last: UInt64 = 0
    @usableFromInline var entry = IOTLBEntry(userAddress: 0, permission: [])

    /// An empty cache.
    public init() {}

    /// ``IOTLB/translate(iova:length:access:into:)`` with a fast path: a buffer inside the
    /// cached entry, with its permission, is answered as one segment without a lookup. Any
    /// other buffer goes to the IOTLB, and the entry holding its first byte (if any) is cached.
    @inlinable
    public mutating func translate(
        _ iotlb: IOTLB,
        iova: UInt64,
        length: UInt64,
        access: IOMMUAccess,
        into segments: UnsafeMutableBufferPointer<IOTLBSegment>
    ) -> IOTLBTranslation {
        if generation == iotlb.generation, iova >= first, iova <= last, length > 0, length - 1 <= last - iova,
            entry.permission.allows(access), !segments.isEmpty
        {
            segments[0] = IOTLBSegment(userAddress: entry.userAddress &+ (iova - first), length: length)
            return .translated(segmentCount: 1)
        }
        return translateAndRemember(iotlb, iova: iova, length: length, access: access, into: segments)
    }

    /// The slow path: refill from the IOTLB, then translate there.
    @usableFromInline
    mutating func translateAndRemember(
        _ iotlb: IOTLB,
        iova: UInt64,
        length: UInt64,
        access: IOMMUAccess,
        into segments: UnsafeMutableBufferPointer<IOTLBSegment>
    ) -> IOTLBTranslation {
        if let (range, hit) = iotlb.entries.lookup(iova) {
            generation = iotlb.generation
            first = range.lowerBound
            last = range.upperBound
            entry = hit
        }
        return iotlb.translate(iova: iova, length: length, access: access, into: segments)
    }
}
