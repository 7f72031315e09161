/// What ``PinTracker/invalidate(_:)`` decided.
public enum InvalidationOutcome: Equatable, Sendable {
    /// No pin covers the range: the caller may unmap (or acknowledge the INVALIDATE) now.
    case completed
    /// Pins cover the range: the caller waits until ``PinTracker/completedInvalidations()``
    /// lists this id. New pins on the range are refused until then.
    case deferred(InvalidationID)
}
