import VhostSystem

/// Which engine a daemon uses: io_uring where the kernel offers it, a thread pool otherwise;
/// `--aio` forces one.
public enum IOEngineSelection {
    /// The best engine this process can use: io_uring if a ring can be set up (it cannot on an
    /// old kernel, with `kernel.io_uring_disabled`, or under a seccomp filter that refuses
    /// io_uring_setup), else the thread pool.
    public static var preferred: IOEngineKind {
        (try? IOUring(entries: 1)) != nil ? .ioUring : .threads
    }

    /// Why `kind` cannot be used here, or nil when it can.
    public static func unavailability(of kind: IOEngineKind) -> String? {
        switch kind {
        case .ioUring:
            do {
                _ = try IOUring(entries: 1)
                return nil
            } catch {
                return "\(error)"
            }
        case .threads, .sync:
            return nil
        }
    }

    /// A new engine of `kind` for a queue of `entries` requests, `file` being the descriptor
    /// most operations use.
    public static func make(_ kind: IOEngineKind, entries: Int, file: Int32?) throws(SystemError) -> any IOEngine {
        switch kind {
        case .ioUring: return try URingEngine(entries: entries, file: file)
        case .threads: return try ThreadPoolEngine(capacity: entries)
        case .sync: return SynchronousEngine(capacity: entries)
        }
    }
}
