import IOMMUModel
import Testing

/// Behaviour of `IOPageTable`, one rule per test.
@Suite struct IOPageTableTests {
    static let kib: UInt64 = 1 << 10
    static let mib: UInt64 = 1 << 20
    static let gib: UInt64 = 1 << 30
    static let top = IOPageTable.iovaLimit
    /// A plausible front-end user address (QEMU's guest RAM mapping), 1 GiB aligned.
    static let user: UInt64 = 0x7f40_0000_0000

    static func leaves(_ table: IOPageTable) -> [(iova: UInt64, size: UInt64, user: UInt64)] {
        var leaves: [(UInt64, UInt64, UInt64)] = []
        table.forEachLeaf { iova, size, user, _ in leaves.append((iova, size, user)) }
        return leaves
    }

    static func translate(_ table: IOPageTable, iova: UInt64, length: UInt64, access: IOMMUAccess = .read,
                          capacity: Int = 8) -> (IOTLBTranslation, [IOTLBSegment]) {
        var storage = [IOTLBSegment](repeating: IOTLBSegment(userAddress: 0, length: 0), count: capacity)
        let result = storage.withUnsafeMutableBufferPointer {
            table.translate(iova: iova, length: length, access: access, into: $0)
        }
        if case .translated(let count) = result { return (result, Array(storage.prefix(count))) }
        return (result, [])
    }

    @Test func usesTwoMebibyteLeafWhenAligned() throws {
        var table = IOPageTable()
        try table.map(iova: 4 * Self.mib, size: 2 * Self.mib, userAddress: Self.user + 2 * Self.mib, permission: .readWrite)
        let hit = try #require(table.walk(iova: 5 * Self.mib + 123))
        #expect(hit.leafSize == 2 * Self.mib)
        #expect(hit.userAddress == Self.user + 3 * Self.mib + 123)
        #expect(hit.permission == .readWrite)
        #expect(table.tablesInUse == 3)  // root, level 3, level 2: no level-1 table
    }

    @Test func usesGibibyteLeafWhenAligned() throws {
        var table = IOPageTable()
        try table.map(iova: 3 * Self.gib, size: Self.gib, userAddress: Self.user, permission: .read)
        #expect(table.walk(iova: 3 * Self.gib)?.leafSize == Self.gib)
        #expect(table.walk(iova: 4 * Self.gib - 1)?.userAddress == Self.user + Self.gib - 1)
        #expect(table.tablesInUse == 2)
    }

    @Test func usesLargestLeavesAlignmentAllowsAtEachEnd() throws {
        var table = IOPageTable()
        // [2 MiB - 4 KiB, 4 MiB + 4 KiB): a 4 KiB leaf, a 2 MiB leaf, a 4 KiB leaf.
        try table.map(iova: 2 * Self.mib - 4 * Self.kib, size: 2 * Self.mib + 8 * Self.kib,
                      userAddress: Self.user + 2 * Self.mib - 4 * Self.kib, permission: .readWrite)
        let found = Self.leaves(table).map { $0.size }
        #expect(found == [4 * Self.kib, 2 * Self.mib, 4 * Self.kib])
        #expect(table.invariantViolations().isEmpty)
    }

    @Test func usesSmallPagesWhenUserAddressIsNotEquallyAligned() throws {
        var table = IOPageTable()
        try table.map(iova: 2 * Self.mib, size: 2 * Self.mib, userAddress: Self.user + 4 * Self.kib, permission: .read)
        #expect(table.walk(iova: 2 * Self.mib)?.leafSize == 4 * Self.kib)
        #expect(Self.leaves(table).count == 512)
    }

    @Test func partialUnmapSplitsGibibyteLeaf() throws {
        var table = IOPageTable()
        try table.map(iova: Self.gib, size: Self.gib, userAddress: Self.user, permission: .readWrite)
        let hole = Self.gib + 5 * Self.mib + 8 * Self.kib
        try table.unmap(iova: hole, size: 4 * Self.kib)
        #expect(table.walk(iova: hole) == nil)
        let before = try #require(table.walk(iova: hole - 1))
        #expect(before.leafSize == 4 * Self.kib)
        #expect(before.userAddress == Self.user + (hole - 1 - Self.gib))
        #expect(table.walk(iova: hole + 4 * Self.kib)?.userAddress == Self.user + (hole + 4 * Self.kib - Self.gib))
        #expect(table.walk(iova: Self.gib)?.leafSize == 2 * Self.mib)
        #expect(table.walk(iova: 2 * Self.gib - 1)?.leafSize == 2 * Self.mib)
        // 511 + 511 + ... : the 1 GiB leaf became 511 2 MiB leaves and 511 4 KiB leaves.
        #expect(Self.leaves(table).count == 511 + 511)
        #expect(table.tablesInUse == 4)
        #expect(table.invariantViolations().isEmpty)
    }

    @Test func partialUnmapSplitsTwoMebibyteLeaf() throws {
        var table = IOPageTable()
        try table.map(iova: 0, size: 2 * Self.mib, userAddress: Self.user, permission: .read)
        try table.unmap(iova: Self.mib, size: Self.mib)
        #expect(table.walk(iova: Self.mib - 1)?.leafSize == 4 * Self.kib)
        #expect(table.walk(iova: Self.mib) == nil)
        #expect(Self.leaves(table).count == 256)
    }

    @Test func emptyTablesAreFreed() throws {
        var table = IOPageTable()
        try table.map(iova: 0x1234_5678_9000, size: 4 * Self.kib, userAddress: Self.user, permission: .read)
        #expect(table.tablesInUse == 4)
        try table.unmap(iova: 0x1234_5678_9000, size: 4 * Self.kib)
        #expect(table.tablesInUse == 1)
        #expect(table.invariantViolations().isEmpty)
        // A huge leaf split by a partial unmap and then emptied frees the split tables as well.
        try table.map(iova: Self.gib, size: Self.gib, userAddress: Self.user, permission: .read)
        try table.unmap(iova: Self.gib + 4 * Self.kib, size: 4 * Self.kib)
        #expect(table.tablesInUse == 4)
        try table.unmap(iova: Self.gib, size: Self.gib)
        #expect(table.tablesInUse == 1)
        #expect(table.invariantViolations().isEmpty)
    }

    @Test func mappingOverTablesWithAHugeLeafFreesThem() throws {
        var table = IOPageTable()
        try table.map(iova: 0, size: 4 * Self.kib, userAddress: Self.user, permission: .read)
        try table.map(iova: 3 * Self.mib, size: 4 * Self.kib, userAddress: Self.user, permission: .read)
        #expect(table.tablesInUse == 5)
        try table.map(iova: 0, size: Self.gib, userAddress: Self.user, permission: .write)
        #expect(table.tablesInUse == 2)
        #expect(table.walk(iova: 3 * Self.mib)?.permission == .write)
        #expect(table.invariantViolations().isEmpty)
    }

    @Test func mapReplacesPartOfAHugeLeaf() throws {
        var table = IOPageTable()
        try table.map(iova: 0, size: 2 * Self.mib, userAddress: Self.user, permission: .read)
        try table.map(iova: 8 * Self.kib, size: 4 * Self.kib, userAddress: 0x1000, permission: .write)
        #expect(table.walk(iova: 8 * Self.kib + 1)?.userAddress == 0x1001)
        #expect(table.walk(iova: 8 * Self.kib + 1)?.permission == .write)
        #expect(table.walk(iova: 12 * Self.kib)?.userAddress == Self.user + 12 * Self.kib)
        #expect(table.walk(iova: 12 * Self.kib)?.permission == .read)
    }

    @Test func iovaBeyondWidthIsRefused() throws {
        var table = IOPageTable()
        let page = 4 * Self.kib
        #expect(throws: IOPageTableError.beyondAddressWidth(iova: Self.top, size: page)) {
            try table.map(iova: Self.top, size: page, userAddress: 0, permission: .read)
        }
        #expect(throws: IOPageTableError.beyondAddressWidth(iova: Self.top - page, size: 2 * page)) {
            try table.map(iova: Self.top - page, size: 2 * page, userAddress: 0, permission: .read)
        }
        // iova + size wraps past 2^64.
        let wrapping = UInt64.max - page + 1
        #expect(throws: IOPageTableError.beyondAddressWidth(iova: wrapping, size: 2 * page)) {
            try table.map(iova: wrapping, size: 2 * page, userAddress: 0, permission: .read)
        }
        #expect(throws: IOPageTableError.beyondAddressWidth(iova: page, size: wrapping)) {
            try table.unmap(iova: page, size: wrapping)
        }
        #expect(table.tablesInUse == 1)
        #expect(table.walk(iova: Self.top) == nil)
        #expect(table.walk(iova: UInt64.max) == nil)
    }

    @Test func mapsTheTopOfTheAddressableRange() throws {
        var table = IOPageTable()
        try table.map(iova: Self.top - Self.gib, size: Self.gib, userAddress: Self.user, permission: .readWrite)
        #expect(table.walk(iova: Self.top - 1)?.userAddress == Self.user + Self.gib - 1)
        #expect(table.walk(iova: Self.top - 1)?.leafSize == Self.gib)
        try table.unmap(iova: Self.top - 4 * Self.kib, size: 4 * Self.kib)
        #expect(table.walk(iova: Self.top - 1) == nil)
        #expect(table.walk(iova: Self.top - 4 * Self.kib - 1)?.leafSize == 4 * Self.kib)
        // A buffer running off the top misses at 2^48, without overflow.
        try table.map(iova: Self.top - 4 * Self.kib, size: 4 * Self.kib, userAddress: 0, permission: .read)
        #expect(Self.translate(table, iova: Self.top - 16, length: UInt64.max).0 == .miss(iova: Self.top))
        #expect(Self.translate(table, iova: UInt64.max, length: UInt64.max).0 == .miss(iova: UInt64.max))
        #expect(table.invariantViolations().isEmpty)
    }

    @Test func mapsAtZero() throws {
        var table = IOPageTable()
        try table.map(iova: 0, size: 4 * Self.kib, userAddress: 0, permission: .write)
        #expect(table.walk(iova: 0)?.userAddress == 0)
        #expect(table.walk(iova: 0)?.permission == .write)
        #expect(Self.translate(table, iova: 0, length: 1, access: .write).1 == [IOTLBSegment(userAddress: 0, length: 1)])
    }

    @Test func refusesMisalignedRanges() {
        var table = IOPageTable()
        #expect(throws: IOPageTableError.misaligned(iova: 0x1001, size: 0x1000, userAddress: 0)) {
            try table.map(iova: 0x1001, size: 0x1000, userAddress: 0, permission: .read)
        }
        #expect(throws: IOPageTableError.misaligned(iova: 0x1000, size: 0x1800, userAddress: 0)) {
            try table.map(iova: 0x1000, size: 0x1800, userAddress: 0, permission: .read)
        }
        #expect(throws: IOPageTableError.misaligned(iova: 0x1000, size: 0x1000, userAddress: 0x10)) {
            try table.map(iova: 0x1000, size: 0x1000, userAddress: 0x10, permission: .read)
        }
        #expect(throws: IOPageTableError.misaligned(iova: 0x1000, size: 0x10, userAddress: 0)) {
            try table.unmap(iova: 0x1000, size: 0x10)
        }
    }

    @Test func refusesEmptyRangesAndPermissions() {
        var table = IOPageTable()
        #expect(throws: IOPageTableError.emptyRange) {
            try table.map(iova: 0, size: 0, userAddress: 0, permission: .read)
        }
        #expect(throws: IOPageTableError.emptyRange) { try table.unmap(iova: 0, size: 0) }
        #expect(throws: IOPageTableError.emptyPermission) {
            try table.map(iova: 0, size: 0x1000, userAddress: 0, permission: [])
        }
    }

    @Test func refusesUserAddressesTheFrameFieldCannotHold() throws {
        var table = IOPageTable()
        let limit = IOPageTableEntry.frameLimit
        try table.map(iova: 0, size: 0x1000, userAddress: limit - 0x1000, permission: .read)
        #expect(table.walk(iova: 0xfff)?.userAddress == limit - 1)
        #expect(throws: IOPageTableError.userAddressBeyondFrameField(userAddress: limit - 0x1000, size: 0x2000)) {
            try table.map(iova: 0, size: 0x2000, userAddress: limit - 0x1000, permission: .read)
        }
        #expect(throws: IOPageTableError.userAddressBeyondFrameField(userAddress: UInt64.max - 0xfff, size: 0x2000)) {
            try table.map(iova: 0, size: 0x2000, userAddress: UInt64.max - 0xfff, permission: .read)
        }
    }

    @Test func reportsPermissionFaultAtTheFirstByteLackingIt() throws {
        var table = IOPageTable()
        try table.map(iova: 0x10000, size: 0x1000, userAddress: 0x5000, permission: .readWrite)
        try table.map(iova: 0x11000, size: 0x1000, userAddress: 0x6000, permission: .read)
        try table.map(iova: 0x12000, size: 0x1000, userAddress: 0x7000, permission: .write)
        #expect(Self.translate(table, iova: 0x10800, length: 0x1000, access: .write).0
                == .permissionFault(iova: 0x11000, needed: .write))
        #expect(Self.translate(table, iova: 0x11800, length: 0x1000, access: .read).0
                == .permissionFault(iova: 0x12000, needed: .read))
        #expect(Self.translate(table, iova: 0x10800, length: 0x1000, access: .read).1
                == [IOTLBSegment(userAddress: 0x5800, length: 0x1000)])
        #expect(Self.translate(table, iova: 0x12000, length: 0x1000, access: .write).1
                == [IOTLBSegment(userAddress: 0x7000, length: 0x1000)])
    }

    @Test func translateAcrossLeavesMergesContiguousPieces() throws {
        var table = IOPageTable()
        // 4 MiB contiguous in user space, mapped by a 4 KiB leaf, then 2 MiB leaves, then 4 KiB.
        try table.map(iova: 2 * Self.mib - 4 * Self.kib, size: 4 * Self.mib,
                      userAddress: Self.user + 2 * Self.mib - 4 * Self.kib, permission: .read)
        let (result, segments) = Self.translate(table, iova: 2 * Self.mib - 100, length: 3 * Self.mib)
        #expect(result == .translated(segmentCount: 1))
        #expect(segments == [IOTLBSegment(userAddress: Self.user + 2 * Self.mib - 100, length: 3 * Self.mib)])
    }

    @Test func translateAcrossLeavesSplitsDiscontiguousPieces() throws {
        var table = IOPageTable()
        try table.map(iova: 0x1000, size: 0x1000, userAddress: 0x9000, permission: .read)
        try table.map(iova: 0x2000, size: 0x1000, userAddress: 0x3000, permission: .read)
        let (result, segments) = Self.translate(table, iova: 0x1ff0, length: 0x20)
        #expect(result == .translated(segmentCount: 2))
        #expect(segments == [IOTLBSegment(userAddress: 0x9ff0, length: 0x10),
                             IOTLBSegment(userAddress: 0x3000, length: 0x10)])
        #expect(Self.translate(table, iova: 0x1ff0, length: 0x20, capacity: 1).0 == .needsMoreSegments)
        // A segment is claimed when it starts: running out comes before a later miss.
        #expect(Self.translate(table, iova: 0x1ff0, length: 0x2000, capacity: 1).0 == .needsMoreSegments)
        #expect(Self.translate(table, iova: 0x1ff0, length: 0x10, capacity: 0).0 == .needsMoreSegments)
        #expect(Self.translate(table, iova: 0x1ff0, length: 0x2000).0 == .miss(iova: 0x3000))
        #expect(Self.translate(table, iova: 0x1ff0, length: 0).0 == .translated(segmentCount: 0))
    }

    @Test func refusalAtTheTableLimitLeavesTheTableUnchanged() throws {
        var table = IOPageTable(tableLimit: 3, preallocatedTables: 1)
        try table.map(iova: 0, size: 2 * Self.mib, userAddress: Self.user, permission: .read)
        #expect(table.tablesInUse == 3)
        #expect(throws: IOPageTableError.tableLimitReached(needed: 1, available: 0)) {
            try table.map(iova: 2 * Self.mib, size: 4 * Self.kib, userAddress: 0, permission: .read)
        }
        #expect(throws: IOPageTableError.tableLimitReached(needed: 1, available: 0)) {
            try table.unmap(iova: 0, size: 4 * Self.kib)  // splitting the 2 MiB leaf needs a table
        }
        #expect(Self.leaves(table).map { $0.size } == [2 * Self.mib])
        #expect(table.invariantViolations().isEmpty)
    }

    @Test func removeLeavesDropsWholeLeavesWithoutAllocating() throws {
        var table = IOPageTable(tableLimit: 3, preallocatedTables: 1)
        try table.map(iova: 0, size: 4 * Self.mib, userAddress: Self.user, permission: .read)
        table.removeLeaves(overlapping: 0x1234...0x1234)
        #expect(table.walk(iova: 0) == nil)
        #expect(table.walk(iova: 2 * Self.mib - 1) == nil)
        #expect(table.walk(iova: 2 * Self.mib)?.leafSize == 2 * Self.mib)
        table.removeLeaves(overlapping: 0...UInt64.max)
        #expect(table.tablesInUse == 1)
        #expect(table.invariantViolations().isEmpty)
    }

    @Test func entriesUseTheSecondLevelFormat() throws {
        var table = IOPageTable()
        try table.map(iova: 0, size: 2 * Self.mib, userAddress: Self.user, permission: .write)
        try table.map(iova: 2 * Self.mib, size: 4 * Self.kib, userAddress: 0x5000, permission: .readWrite)
        try table.map(iova: Self.gib, size: Self.gib, userAddress: Self.user, permission: .read)
        // W | PS, R | W (no PS at level 1), R | PS; the frame is the user address.
        // (Non-optional comparisons: Swift 6.3's thunk for an optional UInt64 operand of #expect
        // reads past its stack slot, which AddressSanitizer reports.)
        let first = try #require(table.leafEntry(containing: 0x1234))
        #expect(first.entry.rawValue == Self.user | 0x82)
        #expect(first.level == 2)
        let second = try #require(table.leafEntry(containing: 2 * Self.mib))
        #expect(second.entry.rawValue == 0x5000 | 0x3)
        #expect(second.level == 1)
        let third = try #require(table.leafEntry(containing: Self.gib))
        #expect(third.entry.rawValue == Self.user | 0x81)
        #expect(third.level == 3)
    }
}
