import IOMMUModel

/// The data path's choice: `IOPageTableMirrorCache` (per queue) in front of the mirror, so a hit
/// skips the walk and a miss costs one walk (the IOTLB only behind what the table lacks).
struct CachedMirrorStructure: MappedStructure {
    static let name = "mirror + cache"
    var plain: MirrorStructure
    var cache = IOPageTableMirrorCache()

    init(_ workload: Workload, failures: inout Int) {
        plain = MirrorStructure(workload, failures: &failures)
    }

    mutating func translate(iova: UInt64, into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation {
        cache.translate(plain.mirror, iova: iova, length: Workload.page, access: .read, into: segments)
    }

    mutating func invalidate(iova: UInt64) -> Bool { plain.invalidate(iova: iova) }

    mutating func update(iova: UInt64, userAddress: UInt64) -> Bool {
        plain.update(iova: iova, userAddress: userAddress)
    }
}
