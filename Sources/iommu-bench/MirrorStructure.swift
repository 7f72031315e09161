import IOMMUModel

/// What the data path uses: `IOPageTableMirror`, the IOTLB with its page table kept in sync
/// (UPDATE / INVALIDATE cost both), translated through the page table with the IOTLB behind it.
struct MirrorStructure: MappedStructure {
    static let name = "mirror"
    var mirror = IOPageTableMirror()

    init(_ workload: Workload, failures: inout Int) {
        for index in 0..<workload.count where !update(iova: workload.iova(index),
                                                      userAddress: workload.userAddresses[index]) {
            failures += 1
        }
    }

    mutating func translate(iova: UInt64, into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation {
        mirror.translate(iova: iova, length: Workload.page, access: .read, into: segments)
    }

    mutating func invalidate(iova: UInt64) -> Bool {
        mirror.invalidate(iova: iova, size: Workload.page)
        return true
    }

    mutating func update(iova: UInt64, userAddress: UInt64) -> Bool {
        do {
            try mirror.update(iova: iova, size: Workload.page, userAddress: userAddress, permission: .readWrite)
        } catch { return false }
        // Every mapping of the workload is page-aligned: the page table must hold it.
        return mirror.unmirroredUpdates == 0
    }
}
