#if canImport(Glibc)
import Glibc
#endif

/// A point on the monotonic clock after which an operation gives up.
public struct MonotonicDeadline: Sendable {
    public let nanoseconds: UInt64

    /// `milliseconds` from now.
    public init(millisecondsFromNow milliseconds: Int) {
        nanoseconds = Self.now() &+ UInt64(max(milliseconds, 0)) &* 1_000_000
    }

    public var hasPassed: Bool { Self.now() >= nanoseconds }

    /// The monotonic clock in nanoseconds.
    public static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}
