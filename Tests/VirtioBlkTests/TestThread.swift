#if canImport(Glibc)
import Glibc
#endif

/// A plain POSIX thread for tests that need a second party running truly in parallel (a guest
/// scribbling on shared memory), independent of the Swift concurrency pool's width.
final class TestThread {
    private var thread = pthread_t()

    init(_ body: @escaping @Sendable () -> Void) throws {
        final class Box {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            let box = Unmanaged<AnyObject>.fromOpaque(context).takeRetainedValue()
            (box as? Box)?.body()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<AnyObject>.fromOpaque(context).release()
            throw TestThreadError(code: result)
        }
    }

    func join() {
        pthread_join(thread, nil)
    }
}

struct TestThreadError: Error {
    let code: Int32
}
