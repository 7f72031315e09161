#if canImport(Glibc)
import Glibc
#endif
import VhostSystem

/// Positioned I/O on a few threads of the queue's own (QEMU's `aio=threads`): the fallback where
/// io_uring is not available. Up to `threadCount` operations run at once; the rest wait in
/// submission order. Results come back through an eventfd the queue's epoll watches.
///
/// The queue's thread and the pool share one mutex, taken once per `submit` (a batch) and
/// once per `reap`, and by a pool thread once to take an operation and once to hand back its
/// result. io_uring needs none of that; this engine is for machines without it.
public final class ThreadPoolEngine: IOEngine {
    /// Threads per queue: enough to keep a disk's queue busy from a guest at QD32 with
    /// several queues, few enough that a daemon serving many queues stays small.
    public static let defaultThreadCount = 4

    private let shared: ThreadPoolQueue
    private var threads: [pthread_t] = []
    /// Queued since the last `submit` (this thread only).
    private let staged: UnsafeMutableBufferPointer<ThreadPoolQueue.Operation>
    private var stagedCount = 0
    /// Submitted and not reaped yet (this thread only): with `stagedCount`, at most `capacity`.
    private var outstanding = 0

    /// - Parameters:
    ///   - capacity: operations queued, running and waiting to be reaped, at most (a queue's
    ///     ring size).
    ///   - threadCount: threads doing the I/O.
    /// - Throws: when the eventfd or a thread cannot be made.
    public init(capacity: Int, threadCount: Int = ThreadPoolEngine.defaultThreadCount) throws(SystemError) {
        let capacity = max(capacity, 1)
        shared = try ThreadPoolQueue(capacity: capacity)
        staged = .allocate(capacity: capacity)
        for _ in 0..<max(threadCount, 1) {
            let context = Unmanaged.passRetained(shared).toOpaque()
            var handle = pthread_t()
            let result = pthread_create(&handle, nil, { raw in
                guard let raw else { return nil }
                let queue = Unmanaged<ThreadPoolQueue>.fromOpaque(raw).takeRetainedValue()
                CurrentThread.setName("aio-pool")
                queue.serve()
                return nil
            }, context)
            guard result == 0 else {
                Unmanaged<ThreadPoolQueue>.fromOpaque(context).release()
                stopThreads()
                staged.deallocate()
                throw SystemError(call: "pthread_create", errno: result)
            }
            threads.append(handle)
        }
    }

    deinit {
        stopThreads()
        staged.deallocate()
    }

    /// Lets the threads finish what was submitted, then joins them.
    private func stopThreads() {
        shared.stop()
        for thread in threads { pthread_join(thread, nil) }
        threads.removeAll()
    }

    public var kind: IOEngineKind { .threads }
    public var completionNotifier: Int32? { shared.notifier.rawValue }

    public func read(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        stage(.init(kind: .read, fd: fd, vectors: vectors, count: Int32(clamping: count), offset: offset, tag: tag))
    }

    public func write(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        stage(.init(kind: .write, fd: fd, vectors: vectors, count: Int32(clamping: count), offset: offset, tag: tag))
    }

    public func synchronize(_ fd: Int32, tag: UInt64) -> Bool {
        stage(.init(kind: .synchronize, fd: fd, vectors: nil, count: 0, offset: 0, tag: tag))
    }

    private func stage(_ operation: ThreadPoolQueue.Operation) -> Bool {
        guard stagedCount + outstanding < staged.count else { return false }
        staged[stagedCount] = operation
        stagedCount += 1
        return true
    }

    public func submit() {
        guard stagedCount > 0 else { return }
        shared.enqueue(UnsafeBufferPointer(rebasing: staged[0..<stagedCount]))
        outstanding += stagedCount
        stagedCount = 0
    }

    public var hasCompletions: Bool { shared.hasResults }

    public func reap(into completions: IOCompletions) -> Int {
        let moved = shared.takeResults(into: completions)
        outstanding -= moved
        return moved
    }
}

/// What a `ThreadPoolEngine` shares with its threads: operations submitted and not started, in
/// a ring; results not reaped; the mutex and condition that guard them; the eventfd.
final class ThreadPoolQueue: @unchecked Sendable {
    // SAFETY (Sendable): every mutable field below is touched only with `mutex` held.
    struct Operation {
        enum Kind { case read, write, synchronize }
        var kind: Kind
        var fd: Int32
        var vectors: UnsafePointer<iovec>?
        var count: Int32
        var offset: UInt64
        var tag: UInt64
    }

    let notifier: EventFD
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private let waiting: UnsafeMutableBufferPointer<Operation>
    private var waitingStart = 0
    private var waitingCount = 0
    private let results: IOCompletions
    private var stopping = false

    init(capacity: Int) throws(SystemError) {
        notifier = try EventFD(nonBlocking: true)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        pthread_cond_init(condition, nil)
        waiting = .allocate(capacity: capacity)
        results = IOCompletions(capacity: capacity)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
        waiting.deallocate()
    }

    /// Appends operations (the engine never submits more than fit) and wakes the threads.
    func enqueue(_ operations: UnsafeBufferPointer<Operation>) {
        pthread_mutex_lock(mutex)
        for operation in operations where waitingCount < waiting.count {
            waiting[(waitingStart + waitingCount) % waiting.count] = operation
            waitingCount += 1
        }
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    var hasResults: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return results.count > 0
    }

    /// Moves the results that fit into `completions`; returns how many.
    func takeResults(into completions: IOCompletions) -> Int {
        _ = try? notifier.drain()
        pthread_mutex_lock(mutex)
        var moved = 0
        while moved < results.count, completions.append(tag: results.tags[moved], result: results.results[moved]) {
            moved += 1
        }
        // What did not fit stays, in order, for the next reap; the eventfd says it is there.
        for index in moved..<results.count {
            results.tags[index - moved] = results.tags[index]
            results.results[index - moved] = results.results[index]
        }
        results.setCount(results.count - moved)
        let left = results.count > 0
        pthread_mutex_unlock(mutex)
        if left { try? notifier.signal() }
        return moved
    }

    /// Makes the threads return once nothing waits.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// A pool thread's loop: take the oldest operation, perform it, hand back its result.
    func serve() {
        pthread_mutex_lock(mutex)
        while true {
            while waitingCount == 0, !stopping { pthread_cond_wait(condition, mutex) }
            guard waitingCount > 0 else { break }
            let operation = waiting[waitingStart]
            waitingStart = (waitingStart + 1) % waiting.count
            waitingCount -= 1
            pthread_mutex_unlock(mutex)
            let result = Self.perform(operation)
            pthread_mutex_lock(mutex)
            let wasEmpty = results.count == 0
            results.append(tag: operation.tag, result: result)
            // The queue's thread is woken when results appear; it takes all there are.
            if wasEmpty { try? notifier.signal() }
        }
        pthread_mutex_unlock(mutex)
    }

    /// A system call's answer as an engine result: bytes, or -errno.
    private static func perform(_ operation: Operation) -> Int32 {
        let answer: Int
        switch operation.kind {
        case .read:
            guard let vectors = operation.vectors else { return -EINVAL }
            answer = preadv(operation.fd, vectors, operation.count, off_t(truncatingIfNeeded: operation.offset))
        case .write:
            guard let vectors = operation.vectors else { return -EINVAL }
            answer = pwritev(operation.fd, vectors, operation.count, off_t(truncatingIfNeeded: operation.offset))
        case .synchronize:
            answer = Int(fdatasync(operation.fd))
        }
        return answer >= 0 ? Int32(clamping: answer) : -errno
    }
}
