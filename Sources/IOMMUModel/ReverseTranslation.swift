/// The answer of ``ReverseTranslator/translate(userAddress:length:into:)``.
public enum ReverseTranslation: Equatable, Sendable {
    /// Every byte is backed; this many segments were written to the front of the caller's
    /// buffer (0 for a zero-length range).
    case translated(segmentCount: Int)
    /// This front-end address, the first of the range in order, is in no region.
    case unbacked(userAddress: UInt64)
    /// The range needs more segments than the caller provided.
    case needsMoreSegments
}
