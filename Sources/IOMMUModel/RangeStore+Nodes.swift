/// Node bookkeeping for the B+ tree: arena slots, subtree summaries, fill levels.
extension RangeStore {
    /// What a parent records about a child's subtree.
    @usableFromInline typealias Summary = (first: UInt64, last: UInt64, gap: UInt64)

    /// The free bytes strictly between an entry ending at `last` and the next one starting at
    /// `next` (`next > last`, so this never overflows).
    @inline(__always)
    @inlinable static func gap(after last: UInt64, before next: UInt64) -> UInt64 {
        next - last - 1
    }

    /// The summary of the non-empty subtree at `node`.
    @inlinable func summary(of node: Int, level: Int) -> Summary {
        if level == 0 {
            let leaf = leaves[node]
            var gap: UInt64 = 0
            for slot in 1..<max(leaf.count, 1) {
                gap = max(gap, Self.gap(after: leaf.lasts[slot - 1], before: leaf.firsts[slot]))
            }
            return (leaf.firsts[0], leaf.lasts[leaf.count - 1], gap)
        }
        let branch = branches[node]
        var gap = branch.gaps[0]
        for slot in 1..<max(branch.count, 1) {
            gap = max(gap, branch.gaps[slot], Self.gap(after: branch.lasts[slot - 1], before: branch.firsts[slot]))
        }
        return (branch.firsts[0], branch.lasts[branch.count - 1], gap)
    }

    /// Recomputes the summary the branch `node` (at `level`) keeps for its child at `slot`.
    @inlinable mutating func refreshChild(at slot: Int, of node: Int, level: Int) {
        let child = summary(of: branches[node].children[slot], level: level - 1)
        branches[node].firsts[slot] = child.first
        branches[node].lasts[slot] = child.last
        branches[node].gaps[slot] = child.gap
    }

    /// The number of entries (level 0) or children of `node`.
    @inlinable func fill(of node: Int, level: Int) -> Int {
        level == 0 ? leaves[node].count : branches[node].count
    }

    // MARK: Arena slots

    @inlinable mutating func allocateLeaf(_ leaf: RangeStoreLeaf<Value>) -> Int {
        if let index = freeLeaves.popLast() {
            leaves[index] = leaf
            return index
        }
        leaves.append(leaf)
        return leaves.count - 1
    }

    @inlinable mutating func allocateBranch(_ branch: RangeStoreBranch) -> Int {
        if let index = freeBranches.popLast() {
            branches[index] = branch
            return index
        }
        branches.append(branch)
        return branches.count - 1
    }

    @inlinable mutating func freeLeaf(_ index: Int) {
        leaves[index] = RangeStoreLeaf()
        freeLeaves.append(index)
    }

    @inlinable mutating func freeBranch(_ index: Int) {
        branches[index] = RangeStoreBranch()
        freeBranches.append(index)
    }

    /// A branch over `children` (each at `level - 1`), with their summaries.
    @inlinable func makeBranch(children: [Int], level: Int) -> RangeStoreBranch {
        var branch = RangeStoreBranch()
        for child in children {
            let summary = summary(of: child, level: level - 1)
            branch.firsts.append(summary.first)
            branch.lasts.append(summary.last)
            branch.gaps.append(summary.gap)
            branch.children.append(child)
        }
        return branch
    }
}
