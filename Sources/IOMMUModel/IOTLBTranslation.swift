/// The answer of ``IOTLB/translate(iova:length:access:into:)``.
public enum IOTLBTranslation: Equatable, Sendable {
    /// The whole buffer is mapped with the access needed; this many segments were written to
    /// the front of the caller's buffer (0 for a zero-length buffer).
    case translated(segmentCount: Int)
    /// No entry holds this IOVA: the first byte of the buffer, in order, that is unmapped. The
    /// back end sends an IOTLB MISS for it and retries after the front end's UPDATE.
    case miss(iova: UInt64)
    /// This IOVA is mapped, but not for `needed`: the first such byte. The back end reports an
    /// ACCESS_FAIL and fails the request.
    case permissionFault(iova: UInt64, needed: IOMMUAccess)
    /// The buffer needs more segments than the caller provided (nothing beyond the first
    /// `count` segments was checked).
    case needsMoreSegments
}
