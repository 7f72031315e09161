import Testing

@testable import IOMMUModel

@Suite("IOTLB")
struct IOTLBTests {
    @Test func translatesABufferInsideOneEntry() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x10000, size: 0x4000, userAddress: 0x7F00_0000_0000, permission: .readWrite)
        let (answer, segments) = iotlb.translated(iova: 0x10100, length: 0x200, access: .read)
        #expect(answer == .translated(segmentCount: 1))
        #expect(segments == [segment(0x7F00_0000_0100, 0x200)])
    }

    @Test func translateAcrossEntriesJoinsContinuingUserAddresses() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x1000, size: 0x1000, userAddress: 0xA000, permission: .read)
        try iotlb.update(iova: 0x2000, size: 0x1000, userAddress: 0xB000, permission: .readWrite)
        try iotlb.update(iova: 0x3000, size: 0x1000, userAddress: 0x5000, permission: .read)
        let (answer, segments) = iotlb.translated(iova: 0x1800, length: 0x2000, access: .read)
        #expect(answer == .translated(segmentCount: 2))
        #expect(segments == [segment(0xA800, 0x1800), segment(0x5000, 0x800)])
    }

    @Test func missIsReportedAtThePreciseFirstUnmappedIOVA() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x1000, size: 0x1000, userAddress: 0xA000, permission: .read)
        try iotlb.update(iova: 0x2800, size: 0x800, userAddress: 0xB800, permission: .read)
        #expect(iotlb.translated(iova: 0x1F00, length: 0x1000, access: .read).0 == .miss(iova: 0x2000))
        #expect(iotlb.translated(iova: 0x0FFF, length: 2, access: .read).0 == .miss(iova: 0x0FFF))
        #expect(iotlb.translated(iova: 0x2800, length: 0x801, access: .read).0 == .miss(iova: 0x3000))
    }

    @Test func permissionFaultsBothWays() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x1000, size: 0x1000, userAddress: 0xA000, permission: .read)
        try iotlb.update(iova: 0x2000, size: 0x1000, userAddress: 0xB000, permission: .write)
        #expect(iotlb.translated(iova: 0x1800, length: 0x10, access: .write).0 == .permissionFault(iova: 0x1800, needed: .write))
        #expect(iotlb.translated(iova: 0x2800, length: 0x10, access: .read).0 == .permissionFault(iova: 0x2800, needed: .read))
        // A buffer spanning both faults where the second entry starts.
        #expect(iotlb.translated(iova: 0x1F00, length: 0x200, access: .read).0 == .permissionFault(iova: 0x2000, needed: .read))
        #expect(iotlb.translated(iova: 0x2000, length: 0x1000, access: .write).0 == .translated(segmentCount: 1))
    }

    @Test func partialInvalidationSplitsTheEntry() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x10000, size: 0x10000, userAddress: 0x100000, permission: .readWrite)
        iotlb.invalidate(iova: 0x14000, size: 0x2000)
        #expect(iotlb.entryList == [[0x10000, 0x13FFF, 0x100000, 3], [0x16000, 0x1FFFF, 0x106000, 3]])
        #expect(iotlb.translated(iova: 0x13000, length: 0x2000, access: .read).0 == .miss(iova: 0x14000))
        #expect(iotlb.translated(iova: 0x16000, length: 0x10, access: .write).1 == [segment(0x106000, 0x10)])
    }

    @Test func invalidationOfSizeZeroDropsEveryEntry() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0, size: 0x1000, userAddress: 0xA000, permission: .read)
        try iotlb.update(iova: UInt64.max - 0xFFF, size: 0x1000, userAddress: 0xB000, permission: .read)
        iotlb.invalidate(iova: 0x5000, size: 0)
        #expect(iotlb.entries.isEmpty)
    }

    @Test func invalidationRunningPastTheTopIsCutThere() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0, size: 0x1000, userAddress: 0xA000, permission: .read)
        try iotlb.update(iova: UInt64.max - 0xFFF, size: 0x1000, userAddress: 0xB000, permission: .read)
        iotlb.invalidate(iova: UInt64.max - 0x7FF, size: 0x10000)
        #expect(iotlb.entryList == [[0, 0xFFF, 0xA000, 1], [UInt64.max - 0xFFF, UInt64.max - 0x800, 0xB000, 1]])
    }

    @Test func updateReplacesWhatItCoversAndKeepsTheRest() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x0, size: 0x3000, userAddress: 0x10000, permission: .read)
        try iotlb.update(iova: 0x1000, size: 0x1000, userAddress: 0x90000, permission: .write)
        #expect(iotlb.entryList == [[0, 0xFFF, 0x10000, 1], [0x1000, 0x1FFF, 0x90000, 2], [0x2000, 0x2FFF, 0x12000, 1]])
    }

    @Test func updateRefusesMalformedMappings() throws {
        var iotlb = IOTLB()
        #expect(throws: IOTLBError.emptyRange) { try iotlb.update(iova: 0, size: 0, userAddress: 0, permission: .read) }
        #expect(throws: IOTLBError.iovaRangeWraps(iova: .max, size: 2)) {
            try iotlb.update(iova: .max, size: 2, userAddress: 0, permission: .read)
        }
        #expect(throws: IOTLBError.userRangeWraps(userAddress: .max - 1, size: 3)) {
            try iotlb.update(iova: 0, size: 3, userAddress: .max - 1, permission: .read)
        }
        #expect(throws: IOTLBError.invalidPermission(rawValue: 0)) { try iotlb.update(iova: 0, size: 1, userAddress: 0, permission: []) }
        #expect(throws: IOTLBError.invalidPermission(rawValue: 7)) {
            try iotlb.update(iova: 0, size: 1, userAddress: 0, permission: IOMMUPermission(rawValue: 7))
        }
        #expect(iotlb.entries.isEmpty)
        // The largest mapping there is: the whole space but one byte, ending at the top.
        try iotlb.update(iova: 1, size: .max, userAddress: 0, permission: .read)
        #expect(iotlb.translated(iova: .max, length: 1, access: .read).1 == [segment(.max - 1, 1)])
    }

    @Test func entryLimitCountsTheSplitAnOverwriteCauses() throws {
        var iotlb = IOTLB(entryLimit: 3)
        try iotlb.update(iova: 0, size: 0x3000, userAddress: 0, permission: .read)
        try iotlb.update(iova: 0x1000, size: 0x1000, userAddress: 0, permission: .read)  // 3 entries
        #expect(throws: IOTLBError.entryLimitReached(limit: 3)) {
            try iotlb.update(iova: 0x2800, size: 0x100, userAddress: 0, permission: .read)  // would split to 5
        }
        try iotlb.update(iova: 0x0, size: 0x2000, userAddress: 0, permission: .write)  // replaces two: 2 entries
        #expect(iotlb.entries.count == 2)
        var closed = IOTLB(entryLimit: .min)
        #expect(closed.entryLimit == 0)
        #expect(throws: IOTLBError.entryLimitReached(limit: 0)) { try closed.update(iova: 0, size: 1, userAddress: 0, permission: .read) }
    }

    /// Found by the iommu-model fuzzer: INVALIDATEs punching holes used to grow the IOTLB past
    /// its limit (one UPDATE, then N holes: N + 1 entries). At the limit the entry's part above
    /// the hole goes too; below the limit the split is kept.
    @Test func invalidationsCannotGrowTheIOTLBPastItsLimit() throws {
        var iotlb = IOTLB(entryLimit: 3)
        try iotlb.update(iova: 0, size: 0x10000, userAddress: 0xA0000, permission: .read)
        iotlb.invalidate(iova: 0x2000, size: 0x1000)  // below the limit: split in two
        #expect(iotlb.entries.count == 2)
        iotlb.invalidate(iova: 0x6000, size: 0x1000)  // 3 entries now: the limit
        #expect(iotlb.entries.count == 3)
        let unmapped = iotlb.invalidate(iova: 0x8000, size: 0x1000)
        #expect(unmapped == 0x8000...0xFFFF, "at the limit the rest of the entry goes too")
        #expect(iotlb.entries.count == 3)
        // What stays still translates; what went misses.
        #expect(iotlb.translated(iova: 0x7000, length: 0x1000, access: .read, capacity: 1).0 == .translated(segmentCount: 1))
        #expect(iotlb.translated(iova: 0x9000, length: 0x1000, access: .read, capacity: 1).0 != .translated(segmentCount: 1))
    }

    @Test func tooFewSegmentsAreReportedAsSuch() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x1000, size: 0x1000, userAddress: 0xA000, permission: .read)
        try iotlb.update(iova: 0x2000, size: 0x1000, userAddress: 0x5000, permission: .read)
        #expect(iotlb.translated(iova: 0x1000, length: 0x2000, access: .read, capacity: 1).0 == .needsMoreSegments)
        #expect(iotlb.translated(iova: 0x1000, length: 0x2000, access: .read, capacity: 0).0 == .needsMoreSegments)
        #expect(iotlb.translated(iova: 0x1000, length: 0x2000, access: .read, capacity: 2).0 == .translated(segmentCount: 2))
    }

    @Test func zeroLengthBufferNeedsNoMapping() {
        #expect(IOTLB().translated(iova: 0x1234, length: 0, access: .write, capacity: 0).0 == .translated(segmentCount: 0))
    }

    @Test func bufferRunningPastTheTopContinuesAtZero() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: UInt64.max - 0xFFF, size: 0x1000, userAddress: 0x10000, permission: .read)
        #expect(iotlb.translated(iova: UInt64.max - 0xF, length: 0x20, access: .read).0 == .miss(iova: 0))
        try iotlb.update(iova: 0, size: 0x1000, userAddress: 0x11000, permission: .read)
        let (answer, segments) = iotlb.translated(iova: UInt64.max - 0xF, length: 0x20, access: .read)
        #expect(answer == .translated(segmentCount: 1))
        #expect(segments == [segment(0x10FF0, 0x20)])
    }

    @Test func aBufferOfTheWholeSpaceButOneByte() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0, size: .max, userAddress: 0, permission: .readWrite)
        try iotlb.update(iova: .max, size: 1, userAddress: .max, permission: .readWrite)
        #expect(iotlb.translated(iova: 0, length: .max, access: .read).1 == [segment(0, .max)])
        #expect(iotlb.translated(iova: 1, length: .max, access: .read).1 == [segment(1, .max)])
        #expect(iotlb.translated(iova: 2, length: .max, access: .read).1 == [segment(2, .max - 1), segment(0, 1)])
    }

    @Test func appliesMessages() throws {
        var iotlb = IOTLB()
        try iotlb.apply(.update(iova: 0x1000, size: 0x2000, userAddress: 0x8000, permission: .read))
        try iotlb.apply(.invalidate(iova: 0x1000, size: 0x1000))
        #expect(iotlb.entryList == [[0x2000, 0x2FFF, 0x9000, 1]])
        #expect(throws: IOTLBError.emptyRange) { try iotlb.apply(.update(iova: 0, size: 0, userAddress: 0, permission: .read)) }
    }

    @Test func generationChangesWithEveryMessageAndNeverRepeats() throws {
        var iotlb = IOTLB()
        var seen: Set<UInt64> = [iotlb.generation, IOTLB().generation]
        #expect(seen.count == 2)
        var copy = iotlb
        try iotlb.update(iova: 0, size: 1, userAddress: 0, permission: .read)
        try copy.update(iova: 0, size: 1, userAddress: 1, permission: .read)
        #expect(seen.insert(iotlb.generation).inserted)
        #expect(seen.insert(copy.generation).inserted)
        iotlb.invalidate(iova: 100, size: 1)  // removes nothing, still a new generation
        #expect(seen.insert(iotlb.generation).inserted)
    }
}
