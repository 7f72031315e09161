/// Non-overlapping inclusive ranges of `UInt64` mapped to values: the role the maple tree plays
/// for iommufd's and VFIO's mmap offsets.
///
/// A B+ tree of order ``capacity`` kept in two arenas (leaves and branches, addressed by index),
/// so the store is a plain value: copying it is O(1) and the first change to a copy copies the
/// arenas (copy-on-write of the arrays). Each branch keeps, per child, the first and last byte
/// and the largest internal gap of the child's subtree; see ``RangeStoreBranch``.
///
/// Every operation is O(log n) plus the number of entries it reports or changes; ``allocate(size:alignment:within:)``
/// and ``firstGap(within:minimumSize:)`` skip every subtree without a large enough gap (see
/// `RangeStore+Gaps.swift` for the one case that is not logarithmic). Ranges may touch both ends
/// of the space, 0 and `UInt64.max`; no operation overflows.
public struct RangeStore<Value: RangeValue> {
    /// The most entries in a leaf and the most children of a branch.
    @inlinable static var capacity: Int { 32 }
    /// The fewest entries (children) a leaf (branch) other than the root holds.
    @inlinable static var minimumFill: Int { capacity / 2 }

    /// The leaf arena; freed slots are listed in `freeLeaves`.
    @usableFromInline var leaves: [RangeStoreLeaf<Value>] = []
    /// The branch arena; freed slots are listed in `freeBranches`.
    @usableFromInline var branches: [RangeStoreBranch] = []
    @usableFromInline var freeLeaves: [Int] = []
    @usableFromInline var freeBranches: [Int] = []
    /// The root node: a leaf index when `height` is 0, a branch index otherwise; -1 when empty.
    @usableFromInline var root = -1
    /// The number of branch levels above the leaves.
    @usableFromInline var height = 0

    /// The number of entries (stored under another name so inlinable code may set it).
    @usableFromInline var entryCount = 0

    /// The number of entries.
    @inlinable public var count: Int { entryCount }

    /// An empty store.
    @inlinable public init() {}

    /// Whether the store has no entries.
    @inlinable public var isEmpty: Bool { entryCount == 0 }

    /// The entry containing `point`, if any.
    @inlinable public func lookup(_ point: UInt64) -> (range: ClosedRange<UInt64>, value: Value)? {
        guard root >= 0 else { return nil }
        var node = root
        var level = height
        while level > 0 {
            // Below the root the chosen child's first byte is <= point, so only the root can miss.
            let slot = branches[node].firsts.withUnsafeBufferPointer { Self.lastSlot(atOrBelow: point, in: $0) }
            guard slot >= 0 else { return nil }
            node = branches[node].children[slot]
            level -= 1
        }
        let slot = leaves[node].firsts.withUnsafeBufferPointer { Self.lastSlot(atOrBelow: point, in: $0) }
        guard slot >= 0, leaves[node].lasts[slot] >= point else { return nil }
        return (leaves[node].firsts[slot]...leaves[node].lasts[slot], leaves[node].values[slot])
    }

    /// Calls `body` with every entry that shares at least one byte with `range`, in increasing
    /// order. The ranges passed are the entries' whole ranges, not clipped to `range`.
    @inlinable public func forEach(
        intersecting range: ClosedRange<UInt64>,
        _ body: (ClosedRange<UInt64>, Value) throws -> Void
    ) rethrows {
        guard root >= 0 else { return }
        _ = try walk(intersecting: range, node: root, level: height) { first, last, value in
            try body(first...last, value)
            return true
        }
    }

    /// The lowest entry that shares a byte with `range`.
    @inlinable func firstEntry(intersecting range: ClosedRange<UInt64>) -> (range: ClosedRange<UInt64>, value: Value)? {
        guard root >= 0 else { return nil }
        var found: (range: ClosedRange<UInt64>, value: Value)?
        _ = walk(intersecting: range, node: root, level: height) { first, last, value in
            found = (first...last, value)
            return false
        }
        return found
    }

    /// Visits the entries of the subtree at `node` that intersect `range`, in order, until
    /// `body` returns false. Returns false if `body` stopped the walk.
    @inlinable func walk(
        intersecting range: ClosedRange<UInt64>,
        node: Int,
        level: Int,
        _ body: (UInt64, UInt64, Value) throws -> Bool
    ) rethrows -> Bool {
        if level == 0 {
            let leaf = leaves[node]
            var slot = Self.firstSlot(atOrAbove: range.lowerBound, in: leaf.lasts)
            while slot < leaf.count, leaf.firsts[slot] <= range.upperBound {
                guard try body(leaf.firsts[slot], leaf.lasts[slot], leaf.values[slot]) else { return false }
                slot += 1
            }
            return true
        }
        let branch = branches[node]
        var slot = Self.firstSlot(atOrAbove: range.lowerBound, in: branch.lasts)
        while slot < branch.count, branch.firsts[slot] <= range.upperBound {
            guard try walk(intersecting: range, node: branch.children[slot], level: level - 1, body) else {
                return false
            }
            slot += 1
        }
        return true
    }

    // MARK: Searching sorted keys

    /// The last index whose key is <= `point`, or -1.
    @inlinable @inline(__always)
    static func lastSlot(atOrBelow point: UInt64, in keys: [UInt64]) -> Int {
        var low = 0
        var high = keys.count
        while low < high {
            let middle = (low &+ high) >> 1
            if keys[middle] <= point { low = middle &+ 1 } else { high = middle }
        }
        return low &- 1
    }

    /// The last index whose key is <= `point`, or -1: `lookup`'s inner loop, on a buffer so
    /// it runs without bounds checks.
    @inlinable @inline(__always)
    static func lastSlot(atOrBelow point: UInt64, in keys: UnsafeBufferPointer<UInt64>) -> Int {
        var low = 0
        var high = keys.count
        while low < high {
            let middle = (low &+ high) >> 1
            if keys[middle] <= point { low = middle &+ 1 } else { high = middle }
        }
        return low &- 1
    }

    /// The first index whose key is >= `point`, or `keys.count`.
    @inlinable @inline(__always)
    static func firstSlot(atOrAbove point: UInt64, in keys: [UInt64]) -> Int {
        var low = 0
        var high = keys.count
        while low < high {
            let middle = (low &+ high) >> 1
            if keys[middle] < point { low = middle &+ 1 } else { high = middle }
        }
        return low
    }
}

/// A store of sendable values is a plain value: it can cross threads.
extension RangeStore: Sendable where Value: Sendable {}
