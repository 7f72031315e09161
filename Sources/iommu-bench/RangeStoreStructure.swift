import IOMMUModel

/// The IOTLB alone: `IOTLB.translate` searches its range store every time.
struct RangeStoreStructure: MappedStructure {
    static let name = "range store"
    var iotlb = IOTLB()

    init(_ workload: Workload, failures: inout Int) {
        for index in 0..<workload.count where !update(iova: workload.iova(index),
                                                      userAddress: workload.userAddresses[index]) {
            failures += 1
        }
    }

    mutating func translate(iova: UInt64, into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation {
        iotlb.translate(iova: iova, length: Workload.page, access: .read, into: segments)
    }

    mutating func invalidate(iova: UInt64) -> Bool {
        iotlb.invalidate(iova: iova, size: Workload.page)
        return true
    }

    mutating func update(iova: UInt64, userAddress: UInt64) -> Bool {
        do {
            try iotlb.update(iova: iova, size: Workload.page, userAddress: userAddress, permission: .readWrite)
        } catch { return false }
        return true
    }
}
