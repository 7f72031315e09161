#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// A one-shot timer on the monotonic clock, readable once it expired: a deadline an epoll
/// can wait for.
public final class TimerFD: Sendable {
    public let descriptor: OwnedFileDescriptor

    public init() throws(SystemError) {
        let fd = try retryingInterrupts("timerfd_create") { cvb_timerfd_create() }
        descriptor = OwnedFileDescriptor(adopting: fd)
    }

    public var rawValue: Int32 { descriptor.rawValue }

    /// Expires at `nanoseconds` on the monotonic clock (`MonotonicDeadline.now()`'s scale); a
    /// time already past expires at once.
    public func arm(atMonotonicNanoseconds nanoseconds: UInt64) {
        _ = cvb_timerfd_arm(descriptor.rawValue, max(nanoseconds, 1))
    }

    /// Consumes the expiration, if any.
    public func drain() {
        var expirations: UInt64 = 0
        _ = read(descriptor.rawValue, &expirations, MemoryLayout<UInt64>.size)
    }
}
