import PropertyBased
import Testing

import IOMMUModel

/// Random memory tables (valid or not) and random ranges against a model that checks regions
/// pairwise and walks a range one region at a time in 128-bit arithmetic.
@Suite("ReverseTranslator against a region list")
struct ReverseTranslatorPropertyTests {
    static let regions = zip(Gen.uint64(), Gen.uint64(), Gen.uint64(), Gen.uint64()).array(of: 0...8)
    static let queries = zip(Gen.uint64(), Gen.uint64(), Gen.uint8()).array(of: 1...60)

    @Test func randomTablesAndRangesMatchTheModel() async {
        var tally: [String: Int] = [:]
        await propertyCheck(count: 300, input: zip(Self.regions, Self.queries)) { specs, queries in
            let table = Self.table(specs)
            let expectedError = Self.firstError(table)
            let built = Result { () throws(ReverseTranslationError) in try ReverseTranslator(regions: table) }
            switch (built, expectedError) {
            case (.failure(let error), let expected?):
                #expect(error == expected)
                tally["refused", default: 0] += 1
                return
            case (.success(let translator), nil):
                for (word, lengthWord, capacity) in queries {
                    // Mostly near a region's start, now and then anywhere.
                    let near = table.isEmpty || word & 7 == 0 ? nil : table[Int(word >> 3 % UInt64(table.count))]
                    let address = near.map { $0.userAddress &+ (word >> 16) % 80 &- 20 } ?? TestPoints.point(word)
                    let length = lengthWord % 4 == 0 ? TestPoints.size(lengthWord >> 2) % 300 : (lengthWord >> 2) % 24
                    let expected = Self.reference(table, address, length, capacity: Int(capacity % 4))
                    var storage = [BackingSegment](repeating: BackingSegment(backing: BackingID(rawValue: 9), fileOffset: 0, length: 0),
                                                   count: Int(capacity % 4))
                    let answer = storage.withUnsafeMutableBufferPointer { translator.translate(userAddress: address, length: length, into: $0) }
                    var written: [BackingSegment] = []
                    if case .translated(let count) = answer { written = Array(storage.prefix(count)) }
                    tally["\(answer)".prefix { $0 != "(" }.description, default: 0] += 1
                    guard answer == expected.0, written == expected.1 else {
                        Issue.record("\(address)+\(length): \(answer) \(written) vs \(expected)")
                        return
                    }
                }
            default:
                Issue.record("built \(built), the model expects \(String(describing: expectedError))")
            }
        }
        for kind in ["refused", "translated", "unbacked", "needsMoreSegments"] {
            #expect(tally[kind, default: 0] >= 100, "\(kind): \(tally)")
        }
    }

    /// A table whose regions mostly follow each other (touching or with small holes, file
    /// offsets often continuing), with now and then an overlap, an empty or a wrapping region,
    /// or a jump to another neighbourhood of the space.
    static func table(_ specs: [(UInt64, UInt64, UInt64, UInt64)]) -> [BackedMemoryRegion] {
        var table: [BackedMemoryRegion] = []
        for (a, b, c, d) in specs {
            let size: UInt64 = b % 32 == 0 ? (b & 32 == 0 ? 0 : UInt64.max >> (b % 3)) : b % 40 + 1
            var start = TestPoints.point(a)
            var fileOffset = d % 512
            if let previous = table.last, a % 8 != 0 {
                let end = previous.userAddress &+ previous.size  // wraps only for a table the model refuses anyway
                start = a % 16 == 1 ? previous.userAddress &+ (a >> 8) % max(previous.size, 1) : end &+ ((a >> 8) % 4 == 3 ? 2 : 0)
                if d % 2 == 0 { fileOffset = previous.fileOffset &+ previous.size }
            }
            table.append(BackedMemoryRegion(userAddress: start, size: size, backing: BackingID(rawValue: c % 2), fileOffset: fileOffset))
        }
        return table
    }

    static func firstError(_ table: [BackedMemoryRegion]) -> ReverseTranslationError? {
        for (index, region) in table.enumerated() {
            if region.size == 0 { return .emptyRegion(index: index) }
            if UInt128(region.userAddress) + UInt128(region.size) - 1 > UInt128(UInt64.max) { return .regionWraps(index: index) }
            if UInt128(region.fileOffset) + UInt128(region.size) - 1 > UInt128(UInt64.max) { return .fileOffsetWraps(index: index) }
            for earlier in 0..<index {
                let other = table[earlier]
                if UInt128(other.userAddress) < UInt128(region.userAddress) + UInt128(region.size),
                    UInt128(region.userAddress) < UInt128(other.userAddress) + UInt128(other.size)
                { return .overlappingRegions(earlier, index) }
            }
        }
        return nil
    }

    static func reference(_ table: [BackedMemoryRegion], _ address: UInt64, _ length: UInt64, capacity: Int)
        -> (ReverseTranslation, [BackingSegment])
    {
        var segments: [BackingSegment] = []
        var position = UInt128(address)
        let end = UInt128(address) + UInt128(length)
        while position < end {
            let here = UInt64(position % (UInt128(1) << 64))
            guard let region = table.first(where: { UInt128($0.userAddress) <= UInt128(here) && UInt128(here) < UInt128($0.userAddress) + UInt128($0.size) }) else {
                return (.unbacked(userAddress: here), [])
            }
            let taken = min(end - position, UInt128(region.userAddress) + UInt128(region.size) - UInt128(here))
            let fileOffset = region.fileOffset + (here - region.userAddress)
            if let last = segments.last, last.backing == region.backing, UInt128(last.fileOffset) + UInt128(last.length) == UInt128(fileOffset) {
                segments[segments.count - 1].length += UInt64(taken)
            } else {
                guard segments.count < capacity else { return (.needsMoreSegments, []) }
                segments.append(BackingSegment(backing: region.backing, fileOffset: fileOffset, length: UInt64(taken)))
            }
            position += taken
        }
        return (.translated(segmentCount: segments.count), segments)
    }
}
