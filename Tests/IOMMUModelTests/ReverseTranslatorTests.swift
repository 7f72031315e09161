import Testing

@testable import IOMMUModel

@Suite("ReverseTranslator")
struct ReverseTranslatorTests {
    static let low = BackingID(rawValue: 10)
    static let high = BackingID(rawValue: 11)

    /// QEMU's usual split: RAM below 4 GiB and above, from one memfd, in two regions whose file
    /// offsets continue each other, plus an unrelated region.
    static let table = [
        BackedMemoryRegion(userAddress: 0x7F00_0000_0000, size: 0x8000_0000, backing: low, fileOffset: 0),
        BackedMemoryRegion(userAddress: 0x7F00_8000_0000, size: 0x4000_0000, backing: low, fileOffset: 0x8000_0000),
        BackedMemoryRegion(userAddress: 0x7F00_C000_0000, size: 0x1000, backing: high, fileOffset: 0x1000),
        BackedMemoryRegion(userAddress: 0x7F10_0000_0000, size: 0x10000, backing: high, fileOffset: 0x100000),
    ]

    @Test func aRangeInsideOneRegionIsOneSegment() throws {
        let translator = try ReverseTranslator(regions: Self.table)
        #expect(translator.segments(userAddress: 0x7F00_0000_1000, length: 0x2000)
            == [BackingSegment(backing: Self.low, fileOffset: 0x1000, length: 0x2000)])
        #expect(translator.location(of: 0x7F10_0000_0010) == BackingLocation(backing: Self.high, fileOffset: 0x100010))
    }

    @Test func aRangeSpanningRegionsOfOneFileIsJoined() throws {
        let translator = try ReverseTranslator(regions: Self.table)
        #expect(translator.segments(userAddress: 0x7F00_7FFF_F000, length: 0x2000)
            == [BackingSegment(backing: Self.low, fileOffset: 0x7FFF_F000, length: 0x2000)])
    }

    @Test func aRangeSpanningFilesGivesOneSegmentPerFile() throws {
        let translator = try ReverseTranslator(regions: Self.table)
        #expect(translator.segments(userAddress: 0x7F00_BFFF_FF00, length: 0x200) == [
            BackingSegment(backing: Self.low, fileOffset: 0xBFFF_FF00, length: 0x100),
            BackingSegment(backing: Self.high, fileOffset: 0x1000, length: 0x100),
        ])
    }

    @Test func theFirstUnbackedAddressIsReported() throws {
        let translator = try ReverseTranslator(regions: Self.table)
        var storage = [BackingSegment](repeating: BackingSegment(backing: Self.low, fileOffset: 0, length: 0), count: 4)
        let result = storage.withUnsafeMutableBufferPointer { translator.translate(userAddress: 0x7F00_C000_0F00, length: 0x200, into: $0) }
        #expect(result == .unbacked(userAddress: 0x7F00_C000_1000))
        #expect(translator.segments(userAddress: 0x1000, length: 1) == nil)
        #expect(translator.segments(userAddress: 0x1000, length: 0) == [])
    }

    @Test func tooFewSegmentsAreReportedAsSuch() throws {
        let translator = try ReverseTranslator(regions: Self.table)
        var storage = [BackingSegment](repeating: BackingSegment(backing: Self.low, fileOffset: 0, length: 0), count: 1)
        let result = storage.withUnsafeMutableBufferPointer { translator.translate(userAddress: 0x7F00_BFFF_FF00, length: 0x200, into: $0) }
        #expect(result == .needsMoreSegments)
    }

    @Test func refusesTablesThatAreEmptyWrappingOrOverlapping() {
        let file = BackingID(rawValue: 1)
        #expect(throws: ReverseTranslationError.emptyRegion(index: 1)) {
            _ = try ReverseTranslator(regions: [.init(userAddress: 0, size: 1, backing: file, fileOffset: 0), .init(userAddress: 5, size: 0, backing: file, fileOffset: 0)])
        }
        #expect(throws: ReverseTranslationError.regionWraps(index: 0)) {
            _ = try ReverseTranslator(regions: [.init(userAddress: .max, size: 2, backing: file, fileOffset: 0)])
        }
        #expect(throws: ReverseTranslationError.fileOffsetWraps(index: 0)) {
            _ = try ReverseTranslator(regions: [.init(userAddress: 0, size: 2, backing: file, fileOffset: .max)])
        }
        #expect(throws: ReverseTranslationError.overlappingRegions(1, 2)) {
            _ = try ReverseTranslator(regions: [
                .init(userAddress: 0, size: 0x1000, backing: file, fileOffset: 0),
                .init(userAddress: 0x2000, size: 0x1000, backing: file, fileOffset: 0),
                .init(userAddress: 0x2FFF, size: 0x10, backing: file, fileOffset: 0),
                .init(userAddress: .max, size: 0x10, backing: file, fileOffset: 0),
            ])
        }
    }

    @Test func regionsAtTheEdgesOfTheSpace() throws {
        let file = BackingID(rawValue: 1)
        let translator = try ReverseTranslator(regions: [
            .init(userAddress: UInt64.max - 0xFFF, size: 0x1000, backing: file, fileOffset: 0),
            .init(userAddress: 0, size: 0x1000, backing: file, fileOffset: 0x1000),
        ])
        #expect(translator.segments(userAddress: UInt64.max - 0xF, length: 0x20)
            == [BackingSegment(backing: file, fileOffset: 0xFF0, length: 0x20)], "continues at 0, modulo 2^64")
        #expect(translator.location(of: .max) == BackingLocation(backing: file, fileOffset: 0xFFF))
    }
}
