import Testing

@testable import IOMMUModel

@Suite("RangeStore")
struct RangeStoreTests {
    static func entries(_ store: RangeStore<Tag>) -> [String] {
        var result: [String] = []
        store.forEach(intersecting: 0...UInt64.max) { result.append("\($0.lowerBound)...\($0.upperBound)=\($1)") }
        return result
    }

    @Test func insertRefusesOverlapAndNamesTheLowestOverlappedEntry() throws {
        var store = RangeStore<Tag>()
        try store.insert(10...19, Tag(base: 1))
        try store.insert(30...39, Tag(base: 2))
        #expect(throws: RangeStoreError.overlap(existing: 10...19)) { try store.insert(15...35, Tag(base: 3)) }
        #expect(throws: RangeStoreError.overlap(existing: 30...39)) { try store.insert(20...30, Tag(base: 3)) }
        try store.insert(20...29, Tag(base: 4))
        #expect(Self.entries(store) == ["10...19=#1", "20...29=#4", "30...39=#2"])
    }

    @Test func lookupFindsOnlyTheContainingEntry() throws {
        var store = RangeStore<Tag>()
        try store.insert(10...19, Tag(base: 100))
        #expect(store.lookup(9) == nil)
        #expect(store.lookup(10)?.range == 10...19)
        #expect(store.lookup(19)?.value == Tag(base: 100))
        #expect(store.lookup(20) == nil)
        #expect(RangeStore<Tag>().lookup(0) == nil)
    }

    @Test func storeSplitsPartiallyCoveredEntriesAndSlicesTheTail() throws {
        var store = RangeStore<Tag>()
        try store.insert(0...99, Tag(base: 1000))
        store.store(40...59, Tag(base: 7))
        #expect(Self.entries(store) == ["0...39=#1000", "40...59=#7", "60...99=#1060"])
        store.store(30...69, Tag(base: 8))
        #expect(Self.entries(store) == ["0...29=#1000", "30...69=#8", "70...99=#1070"])
    }

    @Test func eraseInsideOneEntryKeepsHeadAndTail() throws {
        var store = RangeStore<Tag>()
        try store.insert(100...199, Tag(base: 0))
        store.erase(150...150)
        #expect(Self.entries(store) == ["100...149=#0", "151...199=#51"])
    }

    @Test func eraseAcrossManyEntriesTrimsTheEnds() throws {
        var store = RangeStore<Tag>()
        for index in UInt64(0)..<100 { try store.insert((index * 10)...(index * 10 + 4), Tag(base: index)) }
        store.erase(12...983)
        #expect(Self.entries(store) == ["0...4=#0", "10...11=#1", "984...984=#102", "990...994=#99"])
        #expect(store.invariantViolations().isEmpty)
    }

    @Test func rangesTouchingZeroAndTheTopOfTheSpace() throws {
        var store = RangeStore<Tag>()
        try store.insert(0...0, Tag(base: 1))
        try store.insert(UInt64.max...UInt64.max, Tag(base: 2))
        #expect(store.lookup(0)?.value == Tag(base: 1))
        #expect(store.lookup(.max)?.value == Tag(base: 2))
        #expect(store.firstGap(within: 0...UInt64.max, minimumSize: 1) == 1...(UInt64.max - 1))
        store.store(0...UInt64.max, Tag(base: 3))
        #expect(Self.entries(store) == ["0...18446744073709551615=#3"])
        #expect(store.firstGap(within: 0...UInt64.max, minimumSize: 1) == nil)
        #expect(store.allocate(size: 1, alignment: 1, within: 0...UInt64.max) == nil)
        store.erase(1...(UInt64.max - 1))
        // The tail is sliced from offset UInt64.max: Tag adds it with wrapping arithmetic.
        #expect(Self.entries(store) == ["0...0=#3", "\(UInt64.max)...\(UInt64.max)=#\(UInt64(3) &+ .max)"])
        store.erase(0...UInt64.max)
        #expect(store.isEmpty)
    }

    @Test func forEachVisitsIntersectingEntriesInOrder() throws {
        var store = RangeStore<Tag>()
        for index in UInt64(0)..<1000 { try store.insert((index * 4)...(index * 4 + 1), Tag(base: index)) }
        var seen: [UInt64] = []
        store.forEach(intersecting: 401...409) { _, value in seen.append(value.base) }
        #expect(seen == [100, 101, 102])
    }

    @Test func allocateReturnsTheLowestAlignedFitInTheWindow() throws {
        var store = RangeStore<Tag>()
        try store.insert(0x0000...0x0FFF, Tag(base: 0))
        try store.insert(0x1800...0x1FFF, Tag(base: 0))
        try store.insert(0x3000...0x3FFF, Tag(base: 0))
        // 0x1000...0x17FF is free but too small for 0x1000; the next gap is 0x2000...0x2FFF.
        #expect(store.allocate(size: 0x1000, alignment: 0x1000, within: 0...0xFFFF) == 0x2000...0x2FFF)
        #expect(store.allocate(size: 0x800, alignment: 0x1000, within: 0...0xFFFF) == 0x1000...0x17FF)
        #expect(store.allocate(size: 0x800, alignment: 0x1000, within: 0x1001...0xFFFF) == 0x2000...0x27FF)
        #expect(store.allocate(size: 0x10, alignment: 0, within: 0x1F00...0x3FFF) == 0x2000...0x200F)
        #expect(store.allocate(size: 0x2000, alignment: 1, within: 0...0x3FFF) == nil)
    }

    @Test func allocateAtTheTopOfTheSpaceDoesNotOverflow() throws {
        var store = RangeStore<Tag>()
        try store.insert(0...(UInt64.max - 0x2000), Tag(base: 0))
        #expect(store.allocate(size: 0x1000, alignment: 0x1000, within: 0...UInt64.max) == (UInt64.max - 0x1FFF)...(UInt64.max - 0x1000))
        #expect(store.allocate(size: 0x1000, alignment: 0x1000, within: (UInt64.max - 0x1FFE)...UInt64.max) == (UInt64.max - 0xFFF)...UInt64.max)
        #expect(store.allocate(size: 0x2001, alignment: 1, within: 0...UInt64.max) == nil)
        #expect(store.allocate(size: 0x1000, alignment: 1 << 63, within: 0...UInt64.max) == nil)
        #expect(store.allocate(size: UInt64.max, alignment: 1, within: 0...UInt64.max) == nil)
    }

    @Test func allocateRefusesZeroSizeAndRequestsLargerThanTheWindow() {
        #expect(RangeStore<Tag>().allocate(size: 0, alignment: 1, within: 0...100) == nil)
        #expect(RangeStore<Tag>().allocate(size: 101, alignment: 1, within: 0...100) == 0...100)
        #expect(RangeStore<Tag>().allocate(size: 102, alignment: 1, within: 0...100) == nil)
    }

    @Test func firstGapIsClippedToTheWindowAndHonoursTheMinimumSize() throws {
        var store = RangeStore<Tag>()
        #expect(store.firstGap(within: 5...10, minimumSize: 0) == 5...10)
        try store.insert(10...19, Tag(base: 0))
        try store.insert(22...29, Tag(base: 0))
        #expect(store.firstGap(within: 5...40, minimumSize: 1) == 5...9)
        #expect(store.firstGap(within: 12...40, minimumSize: 1) == 20...21)
        #expect(store.firstGap(within: 12...40, minimumSize: 3) == 30...40)
        #expect(store.firstGap(within: 12...28, minimumSize: 3) == nil)
    }

    @Test func aHundredThousandEntriesBuildSearchAndShrink() throws {
        var store = RangeStore<Tag>()
        for index in UInt64(0)..<100_000 { try store.insert((index << 13)...((index << 13) + 4095), Tag(base: index)) }
        #expect(store.count == 100_000)
        #expect(store.height >= 3)
        #expect(store.lookup((77_777 << 13) + 5)?.value == Tag(base: 77_777))
        #expect(store.lookup((77_777 << 13) + 4096) == nil)
        // Every gap between entries is 4096 bytes; the first larger run follows the last entry.
        let end: UInt64 = (100_000 << 13) - 4096
        #expect(store.allocate(size: 4096, alignment: 1, within: 0...UInt64.max) == 4096...8191)
        #expect(store.allocate(size: 8192, alignment: 1, within: 0...UInt64.max) == end...(end + 8191))
        #expect(store.firstGap(within: 0...UInt64.max, minimumSize: 4097) == end...UInt64.max)
        for index in stride(from: UInt64(0), to: 100_000, by: 2) { store.erase((index << 13)...(index << 13)) }
        #expect(store.count == 100_000)
        store.erase(0...(60_000 << 13))
        #expect(store.count == 40_000)
        #expect(store.invariantViolations().isEmpty)
    }

    @Test func copiesAreIndependentValues() throws {
        var original = RangeStore<Tag>()
        try original.insert(0...9, Tag(base: 1))
        var copy = original
        copy.store(5...5, Tag(base: 2))
        #expect(Self.entries(original) == ["0...9=#1"])
        #expect(Self.entries(copy) == ["0...4=#1", "5...5=#2", "6...9=#7"])
    }
}
