/// An inner node of a ``RangeStore``'s B+ tree: children in key order, each with a summary of
/// its subtree, as parallel arrays.
///
/// The summaries make point lookups, intersection walks and gap searches O(log n): a lookup
/// descends by `firsts`, an intersection walk by `lasts`, and a gap search skips every subtree
/// whose `gaps` entry is too small (the maple tree keeps the same "largest gap below" per slot
/// in its allocation trees). A branch other than the root has between
/// ``RangeStore/minimumFill`` and ``RangeStore/capacity`` children; the root has at least two.
@usableFromInline struct RangeStoreBranch: Sendable {
    /// The first byte of the lowest entry below each child, increasing.
    @usableFromInline var firsts: [UInt64] = []
    /// The last byte of the highest entry below each child.
    @usableFromInline var lasts: [UInt64] = []
    /// The largest number of free bytes between two consecutive entries below each child
    /// (0 when it has one entry or its entries touch). Gaps between two children are not
    /// included: the branch sees them from `lasts[i]` and `firsts[i + 1]`.
    @usableFromInline var gaps: [UInt64] = []
    /// The children: leaf indices when the branch is one level above the leaves, branch
    /// indices otherwise.
    @usableFromInline var children: [Int] = []

    @inlinable init(firsts: [UInt64] = [], lasts: [UInt64] = [], gaps: [UInt64] = [], children: [Int] = []) {
        self.firsts = firsts
        self.lasts = lasts
        self.gaps = gaps
        self.children = children
    }

    /// The number of children.
    @inlinable var count: Int { children.count }
}
