/// A value stored for a range of a ``RangeStore``.
///
/// When an erase or an overwrite keeps only part of an entry, the part that starts `offset`
/// bytes after the entry's first byte gets `sliced(from: offset)`: a value that is an address
/// (a front-end address for an IOVA, a file offset) advances by `offset`; a value that describes
/// the whole range (an object, a count) returns itself.
public protocol RangeValue {
    /// The value for the sub-range that starts `offset` bytes after the original range's first
    /// byte. `offset` is always smaller than the original range's byte count.
    func sliced(from offset: UInt64) -> Self
}
