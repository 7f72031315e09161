/// A leaf of a ``RangeStore``'s B+ tree: entries sorted by first byte, as parallel arrays.
///
/// A leaf other than the root holds between ``RangeStore/minimumFill`` and
/// ``RangeStore/capacity`` entries.
@usableFromInline struct RangeStoreLeaf<Value> {
    /// The first byte of each entry, increasing.
    @usableFromInline var firsts: [UInt64] = []
    /// The last byte of each entry: `firsts[i] <= lasts[i] < firsts[i + 1]`.
    @usableFromInline var lasts: [UInt64] = []
    /// The value of each entry.
    @usableFromInline var values: [Value] = []

    @inlinable init(firsts: [UInt64] = [], lasts: [UInt64] = [], values: [Value] = []) {
        self.firsts = firsts
        self.lasts = lasts
        self.values = values
    }

    /// The number of entries.
    @inlinable var count: Int { firsts.count }
}

extension RangeStoreLeaf: Sendable where Value: Sendable {}
