#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex, for state the control plane and the queue workers share
/// (mailboxes, command completions, the back-end channel) — never on the data path.
///
/// Why not `Synchronization.Mutex`: on Linux it is built on futexes inside the Swift runtime,
/// which ThreadSanitizer does not see, so every access it protects is reported as a race;
/// ThreadSanitizer intercepts pthread mutexes (swift-nio's `NIOLock` makes the same choice).
public final class Locked<Value>: @unchecked Sendable {
    // SAFETY: `value` is only touched with `mutex` held; the mutex lives at a stable address.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held and the value to read or change.
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
