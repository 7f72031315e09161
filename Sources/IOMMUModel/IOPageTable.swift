/// The IOTLB's page-aligned mappings mirrored into a 4-level radix table in the format of Intel
/// VT-d's second-level tables: 512 64-bit entries per table (`IOPageTableEntry`), 4 KiB pages,
/// and 2 MiB or 1 GiB leaves wherever the IOVA, the user address and the size allow them.
///
/// Levels are numbered as in VT-d: level 4 (the root) indexes IOVA bits 47–39, level 3 bits
/// 38–30 (its leaves map 1 GiB), level 2 bits 29–21 (2 MiB leaves), level 1 bits 20–12 (4 KiB
/// leaves). The table therefore addresses 48 bits of IOVA (`addressWidth`): `map` and `unmap`
/// refuse ranges reaching 2^48 or beyond, and a walk or translation there reports a miss.
///
/// The tables live in one pool of `UInt64` (table `i` occupies entries `i * 512 ..< i * 512 +
/// 512`); a table pointer's frame field holds `i * 4096`. Table 0 is the root. `map` and `unmap`
/// count the tables a change needs before touching anything, so a refused change leaves the
/// table as it was; they may grow the pool (up to `tableLimit` tables), empty tables go back to
/// a free list. `walk` and `translate` never allocate.
///
/// Invariants (checked by `invariantViolations()`): every table other than the root is
/// referenced by exactly one entry; `liveCounts[t]` is the number of non-zero entries of table
/// `t` and is never zero for a referenced non-root table; free tables are all zero; leaves are
/// present, carry PS exactly at levels 3 and 2, and their frame is aligned to their size.
public struct IOPageTable: Sendable {
    /// The page size of the format (VT-d second-level 4 KiB pages).
    public static let pageSize: UInt64 = 1 << 12
    /// Entries per table: a 4 KiB table of 8-byte entries.
    public static let entriesPerTable = 512
    /// Levels of the table (VT-d 4-level second-level paging).
    public static let levels = 4
    /// The IOVA bits a 4-level table translates: 12 + 4 × 9.
    public static let addressWidth = 48
    /// The first IOVA beyond the addressable width (2^48).
    public static let iovaLimit: UInt64 = 1 << 48
    /// The default limit: 65536 tables (256 MiB of tables) before `map` refuses.
    public static let defaultTableLimit = 1 << 16

    /// All tables, 512 entries each. Table 0 is the root.
    var entries: [UInt64]
    /// Number of non-zero entries per table.
    var liveCounts: [UInt16]
    /// Indices of tables that are allocated in `entries` but not referenced (all zero).
    var freeTables: [Int]
    /// The most tables (root included) the pool may hold.
    public let tableLimit: Int

    /// The largest `tableLimit` accepted: 2^24 tables (64 GiB of tables), far beyond any real
    /// use, and small enough that no pool size arithmetic can overflow.
    public static let maximumTableLimit = 1 << 24

    /// Creates an empty table (just the root) whose pool holds `preallocatedTables` tables up
    /// front and may grow to `tableLimit` tables. Both are clamped to 1...`maximumTableLimit`.
    public init(tableLimit: Int = IOPageTable.defaultTableLimit, preallocatedTables: Int = 64) {
        self.tableLimit = min(max(1, tableLimit), Self.maximumTableLimit)
        let tables = min(max(1, preallocatedTables), self.tableLimit)
        entries = Array(repeating: 0, count: tables * Self.entriesPerTable)
        liveCounts = Array(repeating: 0, count: tables)
        freeTables = Array((1..<tables).reversed())
    }

    /// Tables referenced from the root, the root included.
    public var tablesInUse: Int { liveCounts.count - freeTables.count }

    /// Tables allocated in the pool (in use or free).
    public var tablesAllocated: Int { liveCounts.count }

    /// Looks up the leaf that maps `iova`.
    ///
    /// - Returns: the user address `iova` maps to, the leaf's permission and its size (4 KiB,
    ///   2 MiB or 1 GiB); nil if nothing maps `iova`, including every `iova` at or beyond 2^48.
    public func walk(iova: UInt64) -> (userAddress: UInt64, permission: IOMMUPermission, leafSize: UInt64)? {
        guard let (entry, level) = leaf(containing: iova) else { return nil }
        let size = Self.span(level)
        return (entry & IOPageTableEntry.frameMask | (iova & (size &- 1)),
                IOPageTableEntry(rawValue: entry).permission, size)
    }

    /// The raw leaf entry that maps `iova` and its level (1, 2 or 3), or nil: the format as a
    /// hardware walker would read it.
    public func leafEntry(containing iova: UInt64) -> (entry: IOPageTableEntry, level: Int)? {
        leaf(containing: iova).map { (IOPageTableEntry(rawValue: $0.entry), $0.level) }
    }

    /// The leaf entry mapping `iova` and its level, or nil. Four dependent loads at most.
    @inline(__always)
    func leaf(containing iova: UInt64) -> (entry: UInt64, level: Int)? {
        guard iova < Self.iovaLimit else { return nil }
        let present = IOPageTableEntry.readBit | IOPageTableEntry.writeBit
        var table = 0
        var level = Self.levels
        while true {
            let entry = entries[table &* Self.entriesPerTable &+ Self.index(of: iova, level: level)]
            if entry & present == 0 { return nil }
            if level == 1 || (level <= 3 && entry & IOPageTableEntry.leafBit != 0) { return (entry, level) }
            table = IOPageTableEntry(rawValue: entry).tableIndex
            level &-= 1
        }
    }

    /// The bit where a level's index starts: 12, 21, 30, 39 for levels 1–4.
    @inline(__always)
    static func shift(_ level: Int) -> UInt64 { UInt64(truncatingIfNeeded: 12 &+ 9 &* (level &- 1)) }

    /// The IOVA span of one entry at `level`: 4 KiB, 2 MiB, 1 GiB, 512 GiB.
    @inline(__always)
    static func span(_ level: Int) -> UInt64 { 1 << shift(level) }

    /// The index of `iova`'s entry in a table at `level`.
    @inline(__always)
    static func index(of iova: UInt64, level: Int) -> Int {
        Int(truncatingIfNeeded: (iova >> shift(level)) & 511)
    }

    /// Whether a present `entry` at `level` points to a table (rather than being a leaf).
    @inline(__always)
    static func isTablePointer(_ entry: UInt64, level: Int) -> Bool {
        level == 4 || (level >= 2 && entry & IOPageTableEntry.leafBit == 0)
    }
}
