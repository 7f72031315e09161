/// When a run stops taking new requests (those in flight are then completed).
public enum RunLimit: Sendable, Equatable, Codable {
    /// After this many seconds.
    case seconds(Double)
    /// After this many requests in all (split evenly over the queues).
    case requests(Int)
}
