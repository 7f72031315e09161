import PropertyBased
import Testing

@testable import IOMMUModel

/// Random UPDATE / INVALIDATE / translate sequences against a sorted-array model, compared after
/// every step; translations are checked with and without a last-hit cache.
@Suite("IOTLB against a sorted-array model")
struct IOTLBPropertyTests {
    typealias Operation = (kind: UInt8, a: UInt64, b: UInt64, c: UInt64)

    static let operations = zip(Gen.uint8(), Gen.uint64(), Gen.uint64(), Gen.uint64())
        .map { Operation($0, $1, $2, $3) }
        .array(of: 1...2000)

    @Test func randomMessageSequencesMatchTheModel() async {
        var outcomes: [String: Int] = [:]
        await propertyCheck(count: 25, input: Self.operations) { operations in
            var iotlb = IOTLB()
            var model = ReferenceRangeStore<IOTLBEntry>()
            var cache = IOTLBCache()
            for (step, operation) in operations.enumerated() {
                let range = TestPoints.range(operation.a, operation.b)
                let size = range.upperBound &- range.lowerBound &+ 1  // 0 means the whole space
                let permission = IOMMUPermission(rawValue: UInt8(truncatingIfNeeded: operation.c % 4))
                switch operation.kind % 4 {
                case 0:
                    // Some user addresses near the top, so that UPDATEs whose user range wraps occur.
                    let userAddress = operation.c & 1 == 0 ? TestPoints.point(operation.c) : operation.c >> 1
                    let actual = Result { () throws(IOTLBError) in
                        try iotlb.update(iova: range.lowerBound, size: size, userAddress: userAddress, permission: permission)
                    }
                    let valid = size != 0 && !permission.isEmpty && !userAddress.addingReportingOverflow(size - 1).overflow
                    #expect((try? actual.get()) != nil || !valid, "update refused: \(actual)")
                    if valid { model.store(range, IOTLBEntry(userAddress: userAddress, permission: permission)) }
                    if case .success = actual { #expect(valid, "accepted an invalid update") }
                case 1:
                    let iova = TestPoints.point(operation.a)
                    let size = TestPoints.size(operation.b)
                    iotlb.invalidate(iova: iova, size: size)
                    if size == 0 {
                        model.erase(0...UInt64.max)
                    } else {
                        model.erase(iova...(iova.addingReportingOverflow(size - 1).overflow ? .max : iova + (size - 1)))
                    }
                default:
                    let iova = TestPoints.point(operation.a)
                    let length = TestPoints.size(operation.b) % 200
                    let access: IOMMUAccess = operation.c & 1 == 0 ? .read : .write
                    let capacity = Int(operation.c >> 1 % 4)
                    let expected = Self.referenceTranslate(model, iova: iova, length: length, access: access, capacity: capacity)
                    let direct = iotlb.translated(iova: iova, length: length, access: access, capacity: capacity)
                    let viaCache = translated(capacity: capacity) {
                        cache.translate(iotlb, iova: iova, length: length, access: access, into: $0)
                    }
                    outcomes[Self.kind(of: expected.0, segments: expected.1.count), default: 0] += 1
                    #expect(direct.0 == expected.0 && direct.1 == expected.1, "translate \(iova) +\(length) \(access) [\(capacity)]")
                    #expect(viaCache.0 == expected.0 && viaCache.1 == expected.1, "cached translate \(iova) +\(length)")
                }
                let expectedEntries = model.entries.map {
                    [$0.range.lowerBound, $0.range.upperBound, $0.value.userAddress, UInt64($0.value.permission.rawValue)]
                }
                guard iotlb.entryList == expectedEntries else {
                    Issue.record("entries differ after step \(step) \(operation): \(iotlb.entryList) vs \(expectedEntries)")
                    return
                }
            }
        }
        // The generator must reach every kind of answer, or the comparison proves little.
        for kind in ["one segment", "several segments", "miss", "fault", "needs more"] {
            #expect(outcomes[kind, default: 0] >= 10, "\(kind): \(outcomes)")
        }
    }

    static func kind(of answer: IOTLBTranslation, segments: Int) -> String {
        switch answer {
        case .translated: segments <= 1 ? "one segment" : "several segments"
        case .miss: "miss"
        case .permissionFault: "fault"
        case .needsMoreSegments: "needs more"
        }
    }

    /// The answer a translation must give, computed a different way: walk the buffer (in
    /// 128-bit arithmetic, wrapping at 2^64) one entry of the sorted model at a time, joining
    /// pieces whose user addresses continue; a piece that would need one segment more than the
    /// caller has ends the walk.
    static func referenceTranslate(
        _ model: ReferenceRangeStore<IOTLBEntry>, iova: UInt64, length: UInt64, access: IOMMUAccess, capacity: Int
    ) -> (IOTLBTranslation, [IOTLBSegment]) {
        var joined: [(user: UInt128, length: UInt128)] = []
        var position = UInt128(iova)
        let end = UInt128(iova) + UInt128(length)  // exclusive, may pass 2^64
        while position < end {
            let address = UInt64(position % (UInt128(1) << 64))
            guard let entry = model.entries.first(where: { $0.range.contains(address) }) else {
                return (.miss(iova: address), [])
            }
            guard entry.value.permission.allows(access) else { return (.permissionFault(iova: address, needed: access), []) }
            let pieceEnd = min(end, position + UInt128(entry.range.upperBound - address) + 1)
            let user = UInt128(entry.value.userAddress) + UInt128(address - entry.range.lowerBound)
            if let last = joined.last, last.user + last.length == user {
                joined[joined.count - 1].length += pieceEnd - position
            } else {
                guard joined.count < capacity else { return (.needsMoreSegments, []) }
                joined.append((user, pieceEnd - position))
            }
            position = pieceEnd
        }
        return (.translated(segmentCount: joined.count), joined.map { segment(UInt64($0.user), UInt64($0.length)) })
    }
}
