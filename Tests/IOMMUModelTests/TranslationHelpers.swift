import IOMMUModel

/// Runs a translation into a fresh array of `capacity` segments and returns the answer with
/// the segments it wrote.
func translated(
    capacity: Int = 16,
    _ body: (UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation
) -> (IOTLBTranslation, [IOTLBSegment]) {
    var storage = [IOTLBSegment](repeating: IOTLBSegment(userAddress: 0xDEAD, length: 0xDEAD), count: capacity)
    let answer = storage.withUnsafeMutableBufferPointer { body($0) }
    if case .translated(let count) = answer { return (answer, Array(storage.prefix(count))) }
    return (answer, [])
}

extension IOTLB {
    /// `translate` into an array (tests only).
    func translated(iova: UInt64, length: UInt64, access: IOMMUAccess, capacity: Int = 16) -> (IOTLBTranslation, [IOTLBSegment]) {
        IOMMUModelTests.translated(capacity: capacity) { translate(iova: iova, length: length, access: access, into: $0) }
    }

    /// Every entry as (first, last, user address, permission bits).
    var entryList: [[UInt64]] {
        var result: [[UInt64]] = []
        entries.forEach(intersecting: 0...UInt64.max) { range, entry in
            result.append([range.lowerBound, range.upperBound, entry.userAddress, UInt64(entry.permission.rawValue)])
        }
        return result
    }
}

/// A short way to write a segment.
func segment(_ userAddress: UInt64, _ length: UInt64) -> IOTLBSegment {
    IOTLBSegment(userAddress: userAddress, length: length)
}
