import Synchronization

/// What the main thread may read while a queue runs: completions so far, and whether to stop.
final class QueueProgress: Sendable {
    let completed = Atomic<Int>(0)
    let stopRequested = Atomic<Bool>(false)
}
