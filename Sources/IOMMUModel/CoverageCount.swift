/// How many pins (or pending invalidations) cover a run of bytes: the value of a
/// ``RangeCounter``'s store. A count describes every byte of its run, so slicing keeps it.
struct CoverageCount: RangeValue, Equatable, Sendable {
    var count: Int

    func sliced(from offset: UInt64) -> CoverageCount { self }
}
