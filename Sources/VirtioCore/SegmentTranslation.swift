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
    /// The translator cannot answer now, through no fault of the ring (an IOTLB miss, or an
    /// access the IOMMU does not allow): the walk stops with `VirtqueueError.translationDeferred`,
    /// which does not break the queue and does not consume the chain. GuestMemory never answers it.
    case deferred
}
