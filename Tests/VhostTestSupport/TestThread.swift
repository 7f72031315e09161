#if canImport(Glibc)
import Glibc
#endif

/// A plain POSIX thread for tests that need a second party running truly in parallel (the
/// control plane's GLib loop, flood writers, a guest scribbling on shared memory), independent
/// of the Swift concurrency pool's width.
public final class TestThread {
    private var thread = pthread_t()
    private var joined = false

    public init(_ body: @escaping @Sendable () -> Void) throws {
        final class Box {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            let box = Unmanaged<Box>.fromOpaque(context).takeRetainedValue()
            box.body()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(context).release()
            throw TestThreadError(code: result)
        }
    }

    /// Waits for the thread; later calls return at once.
    public func join() {
        guard !joined else { return }
        pthread_join(thread, nil)
        joined = true
    }
}

public struct TestThreadError: Error {
    public let code: Int32
}
