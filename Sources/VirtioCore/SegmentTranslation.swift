/// The outcome of translating a guest buffer into host segments (`GuestMemory.segments`).
public enum SegmentTranslation: Equatable, Sendable {
    /// Every byte is mapped; this many segments were written to the front of the buffer.
    case translated(segmentCount: Int)
    /// Some byte of the range lies outside every region (in a gap or past the last region).
    case notMapped
    /// `address + length` passes 2^64.
    case addressOverflow
    /// The range is mapped but spans more regions than the output buffer has room for.
    case needsMoreSegments
}
