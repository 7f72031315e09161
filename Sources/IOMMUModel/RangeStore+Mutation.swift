/// The public changes: insert (refuses overlap), store (overwrites), erase.
extension RangeStore {
    /// Adds `range` → `value`.
    ///
    /// - Throws: ``RangeStoreError/overlap(existing:)`` with the lowest entry `range` overlaps;
    ///   the store is unchanged.
    @inlinable public mutating func insert(_ range: ClosedRange<UInt64>, _ value: Value) throws(RangeStoreError) {
        if let existing = firstEntry(intersecting: range) {
            throw .overlap(existing: existing.range)
        }
        insertEntry(first: range.lowerBound, last: range.upperBound, value: value)
    }

    /// Maps `range` to `value`, overwriting whatever it covers: entries inside `range` are
    /// removed, and an entry that sticks out on either side keeps the part outside (the upper
    /// part with its value ``RangeValue/sliced(from:)`` to where that part starts).
    @inlinable public mutating func store(_ range: ClosedRange<UInt64>, _ value: Value) {
        erase(range)
        insertEntry(first: range.lowerBound, last: range.upperBound, value: value)
    }

    /// Removes every byte of `range` from the store: entries inside it go, and an entry that
    /// sticks out on either side keeps the part outside, as in ``store(_:_:)``.
    @inlinable public mutating func erase(_ range: ClosedRange<UInt64>) {
        var lower = range.lowerBound
        while let (entry, value) = firstEntry(intersecting: lower...range.upperBound) {
            // The head below `range` stays under the same first byte, so it is changed in place.
            if entry.lowerBound < range.lowerBound {
                replaceEntry(first: entry.lowerBound, last: range.lowerBound - 1, value: value)
            } else {
                removeEntry(first: entry.lowerBound)
            }
            guard entry.upperBound < range.upperBound else {
                if entry.upperBound > range.upperBound {
                    let tail = range.upperBound + 1
                    insertEntry(first: tail, last: entry.upperBound, value: value.sliced(from: tail - entry.lowerBound))
                }
                return
            }
            lower = entry.upperBound + 1
        }
    }
}
