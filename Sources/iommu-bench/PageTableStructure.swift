import IOMMUModel

/// The I/O page table alone: `IOPageTable.translate` walks it.
struct PageTableStructure: MappedStructure {
    static let name = "page table"
    var table = IOPageTable()

    init(_ workload: Workload, failures: inout Int) {
        for index in 0..<workload.count where !update(iova: workload.iova(index),
                                                      userAddress: workload.userAddresses[index]) {
            failures += 1
        }
    }

    mutating func translate(iova: UInt64, into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation {
        table.translate(iova: iova, length: Workload.page, access: .read, into: segments)
    }

    mutating func invalidate(iova: UInt64) -> Bool {
        do { try table.unmap(iova: iova, size: Workload.page) } catch { return false }
        return true
    }

    mutating func update(iova: UInt64, userAddress: UInt64) -> Bool {
        do {
            try table.map(iova: iova, size: Workload.page, userAddress: userAddress, permission: .readWrite)
        } catch { return false }
        return true
    }
}
