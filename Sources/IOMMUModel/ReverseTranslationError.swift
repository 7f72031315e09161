/// Why ``ReverseTranslator/init(regions:)`` refused a memory table (regions are numbered as
/// given). Checked in this order, region by region, as vm-memory checks a table when it is built.
public enum ReverseTranslationError: Error, Equatable, Sendable {
    /// A region of size 0.
    case emptyRegion(index: Int)
    /// `userAddress + size - 1` does not fit in 64 bits.
    case regionWraps(index: Int)
    /// `fileOffset + size - 1` does not fit in 64 bits.
    case fileOffsetWraps(index: Int)
    /// Two regions share front-end addresses.
    case overlappingRegions(Int, Int)
}
