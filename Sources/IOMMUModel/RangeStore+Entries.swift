/// The three tree edits every public change is made of: add an entry that overlaps nothing,
/// remove an entry by its first byte, and change an entry's last byte and value in place. Each
/// descends once and refreshes the summaries on the way back up, splitting full nodes (insert)
/// or borrowing from / merging with a sibling (remove) as a B+ tree does.
extension RangeStore {
    // MARK: Insert

    /// Adds `first...last` → `value`. The range must overlap no entry.
    @inlinable mutating func insertEntry(first: UInt64, last: UInt64, value: Value) {
        entryCount += 1
        guard root >= 0 else {
            root = allocateLeaf(RangeStoreLeaf(firsts: [first], lasts: [last], values: [value]))
            height = 0
            return
        }
        if let sibling = insertEntry(first: first, last: last, value: value, into: root, level: height) {
            height += 1
            root = allocateBranch(makeBranch(children: [root, sibling], level: height))
        }
    }

    /// Inserts below `node`; returns the new right sibling when `node` had to split.
    @inlinable mutating func insertEntry(first: UInt64, last: UInt64, value: Value, into node: Int, level: Int) -> Int? {
        if level == 0 {
            let position = Self.lastSlot(atOrBelow: first, in: leaves[node].firsts) + 1
            leaves[node].firsts.insert(first, at: position)
            leaves[node].lasts.insert(last, at: position)
            leaves[node].values.insert(value, at: position)
            return leaves[node].count > Self.capacity ? splitLeaf(node) : nil
        }
        let slot = max(0, Self.lastSlot(atOrBelow: first, in: branches[node].firsts))
        let sibling = insertEntry(first: first, last: last, value: value, into: branches[node].children[slot], level: level - 1)
        refreshChild(at: slot, of: node, level: level)
        guard let sibling else { return nil }
        let summary = summary(of: sibling, level: level - 1)
        branches[node].firsts.insert(summary.first, at: slot + 1)
        branches[node].lasts.insert(summary.last, at: slot + 1)
        branches[node].gaps.insert(summary.gap, at: slot + 1)
        branches[node].children.insert(sibling, at: slot + 1)
        return branches[node].count > Self.capacity ? splitBranch(node) : nil
    }

    /// Moves the upper half of an overfull leaf into a new leaf and returns it.
    @inlinable mutating func splitLeaf(_ node: Int) -> Int {
        let half = leaves[node].count / 2
        let upper = RangeStoreLeaf(
            firsts: Array(leaves[node].firsts[half...]),
            lasts: Array(leaves[node].lasts[half...]),
            values: Array(leaves[node].values[half...]))
        leaves[node].firsts.removeSubrange(half...)
        leaves[node].lasts.removeSubrange(half...)
        leaves[node].values.removeSubrange(half...)
        return allocateLeaf(upper)
    }

    /// Moves the upper half of an overfull branch into a new branch and returns it.
    @inlinable mutating func splitBranch(_ node: Int) -> Int {
        let half = branches[node].count / 2
        let upper = RangeStoreBranch(
            firsts: Array(branches[node].firsts[half...]),
            lasts: Array(branches[node].lasts[half...]),
            gaps: Array(branches[node].gaps[half...]),
            children: Array(branches[node].children[half...]))
        branches[node].firsts.removeSubrange(half...)
        branches[node].lasts.removeSubrange(half...)
        branches[node].gaps.removeSubrange(half...)
        branches[node].children.removeSubrange(half...)
        return allocateBranch(upper)
    }

    // MARK: Change in place

    /// Gives the entry that starts at `first` (it must exist) a new last byte and value. The
    /// new last byte must not reach the next entry.
    @inlinable mutating func replaceEntry(first: UInt64, last: UInt64, value: Value) {
        replaceEntry(first: first, last: last, value: value, in: root, level: height)
    }

    @inlinable mutating func replaceEntry(first: UInt64, last: UInt64, value: Value, in node: Int, level: Int) {
        if level == 0 {
            let slot = Self.lastSlot(atOrBelow: first, in: leaves[node].firsts)
            leaves[node].lasts[slot] = last
            leaves[node].values[slot] = value
            return
        }
        let slot = Self.lastSlot(atOrBelow: first, in: branches[node].firsts)
        replaceEntry(first: first, last: last, value: value, in: branches[node].children[slot], level: level - 1)
        refreshChild(at: slot, of: node, level: level)
    }

    // MARK: Remove

    /// Removes the entry that starts at `first` (it must exist).
    @inlinable mutating func removeEntry(first: UInt64) {
        entryCount -= 1
        removeEntry(first: first, from: root, level: height)
        if height == 0 {
            if leaves[root].count == 0 {
                freeLeaf(root)
                root = -1
            }
        } else if branches[root].count == 1 {
            let only = branches[root].children[0]
            freeBranch(root)
            root = only
            height -= 1
        }
    }

    @inlinable mutating func removeEntry(first: UInt64, from node: Int, level: Int) {
        if level == 0 {
            let slot = Self.lastSlot(atOrBelow: first, in: leaves[node].firsts)
            leaves[node].firsts.remove(at: slot)
            leaves[node].lasts.remove(at: slot)
            leaves[node].values.remove(at: slot)
            return
        }
        let slot = Self.lastSlot(atOrBelow: first, in: branches[node].firsts)
        let child = branches[node].children[slot]
        removeEntry(first: first, from: child, level: level - 1)
        if fill(of: child, level: level - 1) < Self.minimumFill {
            rebalance(childAt: slot, of: node, level: level)
        } else {
            refreshChild(at: slot, of: node, level: level)
        }
    }

    /// Restores the fill of the underfull child at `slot` of `node`: merges it with a neighbour
    /// when both fit in one node, otherwise moves one entry (child) over from the neighbour.
    @inlinable mutating func rebalance(childAt slot: Int, of node: Int, level: Int) {
        // A branch has at least two children (the root collapses when it has one).
        let leftSlot = slot > 0 ? slot - 1 : slot
        let rightSlot = leftSlot + 1
        let left = branches[node].children[leftSlot]
        let right = branches[node].children[rightSlot]
        let childLevel = level - 1
        if fill(of: left, level: childLevel) + fill(of: right, level: childLevel) <= Self.capacity {
            if childLevel == 0 {
                let moved = leaves[right]
                leaves[left].firsts += moved.firsts
                leaves[left].lasts += moved.lasts
                leaves[left].values += moved.values
                freeLeaf(right)
            } else {
                let moved = branches[right]
                branches[left].firsts += moved.firsts
                branches[left].lasts += moved.lasts
                branches[left].gaps += moved.gaps
                branches[left].children += moved.children
                freeBranch(right)
            }
            branches[node].firsts.remove(at: rightSlot)
            branches[node].lasts.remove(at: rightSlot)
            branches[node].gaps.remove(at: rightSlot)
            branches[node].children.remove(at: rightSlot)
            refreshChild(at: leftSlot, of: node, level: level)
            return
        }
        if slot == leftSlot {
            moveFirst(of: right, toEndOf: left, level: childLevel)
        } else {
            moveLast(of: left, toStartOf: right, level: childLevel)
        }
        refreshChild(at: leftSlot, of: node, level: level)
        refreshChild(at: rightSlot, of: node, level: level)
    }

    @inlinable mutating func moveFirst(of source: Int, toEndOf target: Int, level: Int) {
        if level == 0 {
            let first = leaves[source].firsts.removeFirst()
            let last = leaves[source].lasts.removeFirst()
            let value = leaves[source].values.removeFirst()
            leaves[target].firsts.append(first)
            leaves[target].lasts.append(last)
            leaves[target].values.append(value)
        } else {
            let first = branches[source].firsts.removeFirst()
            let last = branches[source].lasts.removeFirst()
            let gap = branches[source].gaps.removeFirst()
            let child = branches[source].children.removeFirst()
            branches[target].firsts.append(first)
            branches[target].lasts.append(last)
            branches[target].gaps.append(gap)
            branches[target].children.append(child)
        }
    }

    @inlinable mutating func moveLast(of source: Int, toStartOf target: Int, level: Int) {
        if level == 0 {
            let first = leaves[source].firsts.removeLast()
            let last = leaves[source].lasts.removeLast()
            let value = leaves[source].values.removeLast()
            leaves[target].firsts.insert(first, at: 0)
            leaves[target].lasts.insert(last, at: 0)
            leaves[target].values.insert(value, at: 0)
        } else {
            let first = branches[source].firsts.removeLast()
            let last = branches[source].lasts.removeLast()
            let gap = branches[source].gaps.removeLast()
            let child = branches[source].children.removeLast()
            branches[target].firsts.insert(first, at: 0)
            branches[target].lasts.insert(last, at: 0)
            branches[target].gaps.insert(gap, at: 0)
            branches[target].children.insert(child, at: 0)
        }
    }
}
