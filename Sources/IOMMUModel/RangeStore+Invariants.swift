/// A full structural check of the tree, for tests (swift-collections' `_checkInvariants`).
extension RangeStore {
    /// Every broken invariant, described; empty when the tree is sound. O(n).
    ///
    /// Checks: entries sorted and non-overlapping across the whole tree; every leaf at the same
    /// depth; fill between ``minimumFill`` and ``capacity`` below the root, a branch root with at
    /// least two children; each branch's summaries equal to its children's; `count` equal to the
    /// number of entries; every arena slot either reachable once or on its free list.
    func invariantViolations() -> [String] {
        var problems: [String] = []
        var entries = 0
        var previousLast: UInt64?
        var seenLeaves = Set<Int>()
        var seenBranches = Set<Int>()

        func visit(_ node: Int, level: Int, isRoot: Bool) {
            let fill = self.fill(of: node, level: level)
            if !isRoot, fill < Self.minimumFill { problems.append("node \(node) at level \(level) holds \(fill)") }
            if fill > Self.capacity { problems.append("node \(node) at level \(level) overfull: \(fill)") }
            if level == 0 {
                if !seenLeaves.insert(node).inserted { problems.append("leaf \(node) reached twice") }
                let leaf = leaves[node]
                if leaf.lasts.count != fill || leaf.values.count != fill { problems.append("leaf \(node) arrays differ") }
                for slot in 0..<fill {
                    if leaf.firsts[slot] > leaf.lasts[slot] { problems.append("leaf \(node) slot \(slot) inverted") }
                    if let previousLast, leaf.firsts[slot] <= previousLast {
                        problems.append("entry at \(leaf.firsts[slot]) overlaps or precedes one ending at \(previousLast)")
                    }
                    previousLast = leaf.lasts[slot]
                    entries += 1
                }
                return
            }
            if !seenBranches.insert(node).inserted { problems.append("branch \(node) reached twice") }
            if isRoot, fill < 2 { problems.append("root branch with \(fill) children") }
            let branch = branches[node]
            for slot in 0..<fill {
                let child = branch.children[slot]
                visit(child, level: level - 1, isRoot: false)
                let actual = summary(of: child, level: level - 1)
                if actual != (branch.firsts[slot], branch.lasts[slot], branch.gaps[slot]) {
                    problems.append("branch \(node) slot \(slot) summary \((branch.firsts[slot], branch.lasts[slot], branch.gaps[slot])) != \(actual)")
                }
            }
        }

        if root >= 0 {
            visit(root, level: height, isRoot: true)
            if height == 0, leaves[root].count == 0 { problems.append("empty root leaf") }
        } else if count != 0 || height != 0 {
            problems.append("empty tree with count \(count), height \(height)")
        }
        if entries != count { problems.append("count \(count) but \(entries) entries") }
        if seenLeaves.count + freeLeaves.count != leaves.count || !seenLeaves.isDisjoint(with: freeLeaves) {
            problems.append("leaf arena: \(seenLeaves.count) live + \(freeLeaves.count) free != \(leaves.count)")
        }
        if seenBranches.count + freeBranches.count != branches.count || !seenBranches.isDisjoint(with: freeBranches) {
            problems.append("branch arena: \(seenBranches.count) live + \(freeBranches.count) free != \(branches.count)")
        }
        return problems
    }
}
