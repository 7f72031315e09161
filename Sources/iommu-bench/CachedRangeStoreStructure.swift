import IOMMUModel

/// The IOTLB behind a per-queue last-hit cache (`IOTLBCache`): a hit skips the range store.
struct CachedRangeStoreStructure: MappedStructure {
    static let name = "range store + cache"
    var plain: RangeStoreStructure
    var cache = IOTLBCache()

    init(_ workload: Workload, failures: inout Int) {
        plain = RangeStoreStructure(workload, failures: &failures)
    }

    mutating func translate(iova: UInt64, into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation {
        cache.translate(plain.iotlb, iova: iova, length: Workload.page, access: .read, into: segments)
    }

    mutating func invalidate(iova: UInt64) -> Bool { plain.invalidate(iova: iova) }

    mutating func update(iova: UInt64, userAddress: UInt64) -> Bool {
        plain.update(iova: iova, userAddress: userAddress)
    }
}
