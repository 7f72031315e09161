import IOMMUModel

/// A test value that records where it was sliced: `base` advances by the slice offset, so a
/// wrong offset after a split shows up as a wrong tag.
struct Tag: RangeValue, Equatable, Sendable, CustomStringConvertible {
    var base: UInt64

    func sliced(from offset: UInt64) -> Tag { Tag(base: base &+ offset) }

    var description: String { "#\(base)" }
}
