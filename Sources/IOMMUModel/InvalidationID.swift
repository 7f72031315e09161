/// Names an invalidation that ``PinTracker/invalidate(_:)`` deferred until pins drain.
/// Increasing in the order the invalidations were asked for.
public struct InvalidationID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public static func < (lhs: InvalidationID, rhs: InvalidationID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "invalidation #\(rawValue)" }
}
