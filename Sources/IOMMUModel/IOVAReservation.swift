/// IOVA space reserved by ``TwoStepMapper/reserve(size:)``: granule-aligned, a whole number of
/// granules, inside the mapper's window. Pages are linked into it later.
public struct IOVAReservation: Hashable, Sendable {
    /// Tells this reservation from a later one at the same IOVAs.
    public let id: UInt64
    /// The reserved IOVAs.
    public let range: ClosedRange<UInt64>
}
