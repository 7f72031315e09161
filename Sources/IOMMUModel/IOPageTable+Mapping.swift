extension IOPageTable {
    /// What a change writes over a range: a mapping (`permissionBits != 0`) or nothing.
    /// `userAddress` is the user address of `iova`; any IOVA `x` of the range maps to
    /// `userAddress + (x - iova)`.
    struct Change {
        var iova: UInt64
        var userAddress: UInt64
        /// R and W bits of the leaves to write; zero to unmap.
        var permissionBits: UInt64
        /// When unmapping part of a huge leaf: split it (exact) or drop it whole (never allocates).
        var splitsLeaves: Bool

        var isUnmap: Bool { permissionBits == 0 }
    }

    /// Maps `[iova, iova + size)` to `[userAddress, userAddress + size)` with `permission`,
    /// replacing whatever mapped any part of it (huge leaves partly replaced are split). Each
    /// piece uses the largest leaf (1 GiB, 2 MiB, 4 KiB) that its IOVA, its user address and the
    /// remaining size are aligned to.
    ///
    /// The table mirrors page-aligned mappings only: an IOTLB entry whose IOVA, size or user
    /// address is not a multiple of 4 KiB stays in the range store alone.
    ///
    /// - Throws: in this order, `IOPageTableError.emptyRange`, `.misaligned`,
    ///   `.beyondAddressWidth`, `.userAddressBeyondFrameField`, `.emptyPermission`,
    ///   `.tableLimitReached`. On any of them the table is unchanged.
    public mutating func map(iova: UInt64, size: UInt64, userAddress: UInt64,
                             permission: IOMMUPermission) throws(IOPageTableError) {
        let last = try Self.validatedLast(iova: iova, size: size, userAddress: userAddress)
        let (userEnd, userOverflow) = userAddress.addingReportingOverflow(size)
        guard !userOverflow, userEnd <= IOPageTableEntry.frameLimit else {
            throw .userAddressBeyondFrameField(userAddress: userAddress, size: size)
        }
        let bits = IOPageTableEntry(leafFrame: 0, permission: permission, sizeBit: false).rawValue
        guard bits != 0 else { throw .emptyPermission }
        try apply(Change(iova: iova, userAddress: userAddress, permissionBits: bits, splitsLeaves: true),
                  first: iova, last: last)
    }

    /// Removes every mapping of `[iova, iova + size)`. A 1 GiB or 2 MiB leaf partly inside the
    /// range is split so that the part outside stays mapped; tables left empty are freed.
    ///
    /// - Throws: in this order, `IOPageTableError.emptyRange`, `.misaligned` (with
    ///   `userAddress: 0`), `.beyondAddressWidth`, `.tableLimitReached` (splitting needs up to
    ///   two new tables at each end of the range). On any of them the table is unchanged.
    public mutating func unmap(iova: UInt64, size: UInt64) throws(IOPageTableError) {
        let last = try Self.validatedLast(iova: iova, size: size, userAddress: 0)
        try apply(Change(iova: iova, userAddress: 0, permissionBits: 0, splitsLeaves: true),
                  first: iova, last: last)
    }

    /// Removes every leaf that maps any byte of `range`, whole: a huge leaf partly inside is
    /// dropped rather than split, so this may unmap more than `range` (never less). It needs no
    /// alignment, ignores the part of `range` beyond 2^48, never allocates and cannot fail: the
    /// way to keep the table a safe subset of the IOTLB when `unmap` is refused.
    public mutating func removeLeaves(overlapping range: ClosedRange<UInt64>) {
        guard range.lowerBound < Self.iovaLimit else { return }
        let last = min(range.upperBound, Self.iovaLimit - 1)
        let change = Change(iova: range.lowerBound, userAddress: 0, permissionBits: 0, splitsLeaves: false)
        write(change, table: 0, level: Self.levels, base: 0, first: range.lowerBound, last: last)
    }

    /// Unmaps everything and returns every table but the root to the free list.
    public mutating func removeAll() {
        removeLeaves(overlapping: 0...(Self.iovaLimit - 1))
    }

    /// Checks a range in the order the errors are documented and returns its last byte.
    static func validatedLast(iova: UInt64, size: UInt64, userAddress: UInt64) throws(IOPageTableError) -> UInt64 {
        guard size != 0 else { throw .emptyRange }
        let pageMask = pageSize - 1
        guard (iova | size | userAddress) & pageMask == 0 else {
            throw .misaligned(iova: iova, size: size, userAddress: userAddress)
        }
        let (end, overflow) = iova.addingReportingOverflow(size)
        guard !overflow, end <= iovaLimit else { throw .beyondAddressWidth(iova: iova, size: size) }
        return end - 1
    }

    /// Counts the tables `change` needs, reserves them, then writes it.
    mutating func apply(_ change: Change, first: UInt64, last: UInt64) throws(IOPageTableError) {
        let available = tableLimit - tablesInUse
        let needed = tablesNeeded(change, table: 0, virtualLeaf: false, level: Self.levels, base: 0,
                                  first: first, last: last, budget: available)
        guard needed <= available else { throw .tableLimitReached(needed: needed, available: available) }
        write(change, table: 0, level: Self.levels, base: 0, first: first, last: last)
    }

    /// How many new tables writing `change` over `[first, last]` of a table at `level` whose
    /// first IOVA is `base` takes. `table` is nil for a table that does not exist yet: then its
    /// entries are all empty, or all leaves if `virtualLeaf` (a huge leaf about to be split).
    /// Stops counting as soon as the count passes `budget`.
    func tablesNeeded(_ change: Change, table: Int?, virtualLeaf: Bool, level: Int, base: UInt64,
                      first: UInt64, last: UInt64, budget: Int) -> Int {
        guard level > 1 else { return 0 }  // level-1 entries are leaves: no tables below them
        let shift = Self.shift(level)
        let span = Self.span(level)
        let virtualEntry = virtualLeaf ? IOPageTableEntry.readBit | IOPageTableEntry.leafBit : 0
        var needed = 0
        for index in Int((first - base) >> shift)...Int((last - base) >> shift) {
            let slotFirst = base + UInt64(index) << shift
            let slotLast = slotFirst + (span - 1)
            let low = max(first, slotFirst)
            let high = min(last, slotLast)
            let full = low == slotFirst && high == slotLast
            let old = table.map { entries[$0 * Self.entriesPerTable + index] } ?? virtualEntry
            let oldIsTable = old != 0 && Self.isTablePointer(old, level: level)
            if change.isUnmap {
                if old == 0 || full { continue }
                if !oldIsTable && !change.splitsLeaves { continue }
            } else if level <= 3 && full && (change.userAddress + (low - change.iova)) & (span - 1) == 0 {
                continue  // becomes a leaf
            }
            if oldIsTable {
                needed += tablesNeeded(change, table: IOPageTableEntry(rawValue: old).tableIndex, virtualLeaf: false,
                                       level: level - 1, base: slotFirst, first: low, last: high,
                                       budget: budget - needed)
            } else {
                needed += 1 + tablesNeeded(change, table: nil, virtualLeaf: old != 0 && !full, level: level - 1,
                                           base: slotFirst, first: low, last: high, budget: budget - needed - 1)
            }
            if needed > budget { return needed }
        }
        return needed
    }

    /// Writes `change` over `[first, last]` of `table` at `level`, whose first IOVA is `base`.
    /// The tables it needs have been counted (`tablesNeeded`) against the limit.
    mutating func write(_ change: Change, table: Int, level: Int, base: UInt64, first: UInt64, last: UInt64) {
        let shift = Self.shift(level)
        let span = Self.span(level)
        for index in Int((first - base) >> shift)...Int((last - base) >> shift) {
            let slotFirst = base + UInt64(index) << shift
            let slotLast = slotFirst + (span - 1)
            let low = max(first, slotFirst)
            let high = min(last, slotLast)
            let full = low == slotFirst && high == slotLast
            let position = table * Self.entriesPerTable + index
            let old = entries[position]
            let oldIsTable = old != 0 && Self.isTablePointer(old, level: level)

            if change.isUnmap {
                if old == 0 { continue }
                if full || (!oldIsTable && !change.splitsLeaves) {
                    if oldIsTable { release(IOPageTableEntry(rawValue: old).tableIndex, level: level - 1) }
                    entries[position] = 0
                    liveCounts[table] -= 1
                    continue
                }
                let child = oldIsTable ? IOPageTableEntry(rawValue: old).tableIndex
                                       : split(position: position, level: level)
                write(change, table: child, level: level - 1, base: slotFirst, first: low, last: high)
                if liveCounts[child] == 0 {
                    freeTables.append(child)
                    entries[position] = 0
                    liveCounts[table] -= 1
                }
                continue
            }

            let user = change.userAddress + (low - change.iova)
            if level == 1 || (level <= 3 && full && user & (span - 1) == 0) {
                if oldIsTable { release(IOPageTableEntry(rawValue: old).tableIndex, level: level - 1) }
                if old == 0 { liveCounts[table] += 1 }
                entries[position] = user | change.permissionBits | (level > 1 ? IOPageTableEntry.leafBit : 0)
                continue
            }
            let child: Int
            if oldIsTable {
                child = IOPageTableEntry(rawValue: old).tableIndex
            } else if old != 0 && !full {
                child = split(position: position, level: level)
            } else {
                // Empty, or a leaf about to be overwritten entirely: a fresh zero table.
                child = allocateTable()
                if old == 0 { liveCounts[table] += 1 }
                entries[position] = IOPageTableEntry(table: child).rawValue
            }
            write(change, table: child, level: level - 1, base: slotFirst, first: low, last: high)
        }
    }

    /// Replaces the huge leaf at `position` (a level-`level` entry) with a new table of 512
    /// leaves of the next size mapping the same addresses with the same permission.
    mutating func split(position: Int, level: Int) -> Int {
        let leaf = entries[position]
        let child = allocateTable()
        let childSpan = Self.span(level - 1)
        let bits = leaf & (IOPageTableEntry.readBit | IOPageTableEntry.writeBit)
            | (level - 1 > 1 ? IOPageTableEntry.leafBit : 0)
        var frame = leaf & IOPageTableEntry.frameMask
        let start = child * Self.entriesPerTable
        for index in 0..<Self.entriesPerTable {
            entries[start + index] = frame | bits
            frame += childSpan
        }
        liveCounts[child] = UInt16(Self.entriesPerTable)
        entries[position] = IOPageTableEntry(table: child).rawValue
        return child
    }

    /// A zero table from the free list, or a new one appended to the pool. The caller has
    /// checked the limit.
    mutating func allocateTable() -> Int {
        if let table = freeTables.popLast() { return table }
        entries.append(contentsOf: repeatElement(0, count: Self.entriesPerTable))
        liveCounts.append(0)
        return liveCounts.count - 1
    }

    /// Zeroes `table` (at `level`) and every table below it, and puts them on the free list.
    mutating func release(_ table: Int, level: Int) {
        let start = table * Self.entriesPerTable
        for position in start..<(start + Self.entriesPerTable) {
            let entry = entries[position]
            if entry == 0 { continue }
            if Self.isTablePointer(entry, level: level) {
                release(IOPageTableEntry(rawValue: entry).tableIndex, level: level - 1)
            }
            entries[position] = 0
        }
        liveCounts[table] = 0
        freeTables.append(table)
    }
}
