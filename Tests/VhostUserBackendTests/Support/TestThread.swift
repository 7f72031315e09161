#if canImport(Glibc)
import Glibc
#endif

/// A plain POSIX thread: the control plane's GLib loop and flood writers run on one, outside
/// the Swift concurrency pool (whose width the tests must not depend on).
final class TestThread {
    private var thread = pthread_t()
    private var joined = false

    init(_ body: @escaping @Sendable () -> Void) throws {
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

    func join() {
        guard !joined else { return }
        pthread_join(thread, nil)
        joined = true
    }
}

struct TestThreadError: Error {
    let code: Int32
}
