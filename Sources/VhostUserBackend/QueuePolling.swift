/// How long a queue worker keeps polling its ring after a batch before it sleeps on the kick
/// eventfd. While it polls the driver does not kick (notifications stay off), so a request
/// that arrives within the window costs neither a kick nor a wakeup.
///
/// Adaptive, as QEMU's AioContext polling: the window halves each time a poll finds nothing,
/// and goes back to `maximumNanoseconds` when a kick arrives within that long after the worker
/// went to sleep (polling would have caught it). An idle queue therefore stops polling quickly.
public struct QueuePolling: Sendable, Equatable {
    /// The longest poll after a batch; 0 turns polling off.
    public var maximumNanoseconds: UInt64

    public init(maximumNanoseconds: UInt64) {
        self.maximumNanoseconds = maximumNanoseconds
    }

    public static let off = QueuePolling(maximumNanoseconds: 0)
    /// 50 µs: measured in docs/benchmarks.md (the QD1 and QD32 cases against qemu-storage-daemon).
    public static let standard = QueuePolling(maximumNanoseconds: 50_000)
}
