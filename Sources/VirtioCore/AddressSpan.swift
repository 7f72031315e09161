/// One region as the lookup sees it in one address space: `[start, end)` and the host address of
/// `start`. Kept in flat, sorted arrays of plain values so a lookup touches no class references.
struct AddressSpan: Sendable {
    let start: UInt64
    /// Exclusive end; `start < end`.
    let end: UInt64
    /// Host address of `start`, as a bit pattern (plain integers keep the table Sendable).
    let hostAddress: UInt
}

extension Array where Element == AddressSpan {
    /// Index of the span containing `address`, by binary search: O(log n).
    @inline(__always)
    func spanIndex(containing address: UInt64) -> Int? {
        // Find the first span starting after `address`; the one before it is the candidate.
        var low = 0
        var high = count
        while low < high {
            let middle = low + (high - low) / 2
            if self[middle].start <= address {
                low = middle + 1
            } else {
                high = middle
            }
        }
        guard low > 0, address < self[low - 1].end else { return nil }
        return low - 1
    }
}
