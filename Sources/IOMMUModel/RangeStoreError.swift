/// Why a ``RangeStore`` refused a change.
public enum RangeStoreError: Error, Equatable, Sendable {
    /// ``RangeStore/insert(_:_:)``: the new range overlaps this entry (the lowest one it
    /// overlaps); nothing was changed.
    case overlap(existing: ClosedRange<UInt64>)
    /// A size-based request described no bytes. A `ClosedRange` always holds at least one byte,
    /// so the store's own operations never throw this; it is the answer for callers that build
    /// ranges from a first byte and a size of 0.
    case emptyRange
}
