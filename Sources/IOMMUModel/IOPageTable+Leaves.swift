extension IOPageTable {
    /// Calls `body` for every leaf, in IOVA order, with the IOVA it starts at, its size (4 KiB,
    /// 2 MiB or 1 GiB), the user address it maps to and its permission. For tests and
    /// diagnostics; a huge leaf is reported once.
    public func forEachLeaf(_ body: (_ iova: UInt64, _ size: UInt64, _ userAddress: UInt64,
                                     _ permission: IOMMUPermission) -> Void) {
        visit(table: 0, level: Self.levels, base: 0, body)
    }

    private func visit(table: Int, level: Int, base: UInt64,
                       _ body: (UInt64, UInt64, UInt64, IOMMUPermission) -> Void) {
        let start = table * Self.entriesPerTable
        for index in 0..<Self.entriesPerTable {
            let entry = entries[start + index]
            guard entry != 0 else { continue }
            let iova = base + UInt64(index) << Self.shift(level)
            if Self.isTablePointer(entry, level: level) {
                visit(table: IOPageTableEntry(rawValue: entry).tableIndex, level: level - 1, base: iova, body)
            } else {
                let leaf = IOPageTableEntry(rawValue: entry)
                body(iova, Self.span(level), leaf.frame, leaf.permission)
            }
        }
    }
}
