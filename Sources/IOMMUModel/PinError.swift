/// Why a ``PinTracker`` refused.
public enum PinError: Error, Equatable, Sendable {
    /// Pinning the range would take the pinned bytes past the limit: `pinned` bytes are pinned
    /// now, and the range would add more than `limit - pinned` (or all 2^64). The request should
    /// fail or wait for other requests to complete.
    case limitExceeded(limit: UInt64, pinned: UInt64, requested: ClosedRange<UInt64>)
    /// The range overlaps an invalidation waiting for its pins to drain; its translations are
    /// already gone, so no new request may start using it.
    case invalidationPending(InvalidationID)
    /// The token was given out by another tracker (a bug in the caller); it was consumed, and
    /// its pin stays held in the tracker it came from.
    case foreignToken
}
