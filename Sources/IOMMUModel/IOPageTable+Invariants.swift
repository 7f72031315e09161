extension IOPageTable {
    /// Checks the structural invariants listed on `IOPageTable` and returns a description of each
    /// violation (empty when the table is sound). Walks every table: for tests and diagnostics.
    public func invariantViolations() -> [String] {
        var violations: [String] = []
        var referenced = Array(repeating: false, count: liveCounts.count)
        referenced[0] = true
        check(table: 0, level: Self.levels, referenced: &referenced, violations: &violations)
        var isFree = Array(repeating: false, count: liveCounts.count)
        for table in freeTables {
            guard table > 0 && table < liveCounts.count else {
                violations.append("free list holds \(table), outside the pool")
                continue
            }
            if isFree[table] { violations.append("table \(table) is on the free list twice") }
            isFree[table] = true
            if referenced[table] { violations.append("table \(table) is both free and referenced") }
            let start = table * Self.entriesPerTable
            if liveCounts[table] != 0 || entries[start..<(start + Self.entriesPerTable)].contains(where: { $0 != 0 }) {
                violations.append("free table \(table) is not zero")
            }
        }
        for table in 0..<liveCounts.count where !referenced[table] && !isFree[table] {
            violations.append("table \(table) is neither referenced nor free (leaked)")
        }
        if liveCounts.count > tableLimit { violations.append("pool holds \(liveCounts.count) tables, limit \(tableLimit)") }
        return violations
    }

    private func check(table: Int, level: Int, referenced: inout [Bool], violations: inout [String]) {
        let start = table * Self.entriesPerTable
        var live = 0
        for index in 0..<Self.entriesPerTable {
            let entry = entries[start + index]
            guard entry != 0 else { continue }
            live += 1
            let fields = IOPageTableEntry(rawValue: entry)
            let known = IOPageTableEntry.readBit | IOPageTableEntry.writeBit | IOPageTableEntry.leafBit
                | IOPageTableEntry.frameMask
            if entry & ~known != 0 { violations.append("table \(table)[\(index)]: reserved bits set") }
            if !fields.isPresent { violations.append("table \(table)[\(index)]: non-zero but not present") }
            if Self.isTablePointer(entry, level: level) {
                let child = fields.tableIndex
                if entry & (IOPageTableEntry.readBit | IOPageTableEntry.writeBit | IOPageTableEntry.leafBit)
                    != IOPageTableEntry.readBit | IOPageTableEntry.writeBit {
                    violations.append("table \(table)[\(index)]: table pointer without R|W or with PS")
                }
                guard child > 0 && child < liveCounts.count else {
                    violations.append("table \(table)[\(index)]: points outside the pool (\(child))")
                    continue
                }
                if referenced[child] {
                    violations.append("table \(child) referenced twice")
                    continue
                }
                referenced[child] = true
                if liveCounts[child] == 0 { violations.append("table \(child) is referenced but empty") }
                check(table: child, level: level - 1, referenced: &referenced, violations: &violations)
            } else {
                if level == 1 && fields.hasLeafBit { violations.append("4 KiB leaf \(table)[\(index)] has PS") }
                if fields.frame & (Self.span(level) - 1) != 0 {
                    violations.append("leaf \(table)[\(index)] at level \(level): frame not aligned to its size")
                }
            }
        }
        if live != Int(liveCounts[table]) {
            violations.append("table \(table): live count \(liveCounts[table]), \(live) entries present")
        }
    }
}
