/// Proof that a request holds a pin on an IOVA range of a ``PinTracker``.
///
/// Non-copyable, and only ``PinTracker/release(_:)`` consumes it: a pin can be released at most
/// once, and only by the tracker that gave it out. A token dropped without being released
/// leaves its pin held (and any invalidation of its range pending), as a leaked page pin would;
/// ``PinTracker/pinCount`` shows such leaks in tests.
public struct PinToken: ~Copyable, Sendable {
    /// The pinned IOVA range.
    public let range: ClosedRange<UInt64>
    /// The identity of the tracker that gave the pin out.
    let tracker: UInt64

    init(range: ClosedRange<UInt64>, tracker: UInt64) {
        self.range = range
        self.tracker = tracker
    }
}
