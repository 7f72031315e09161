#if canImport(Glibc)
import Glibc
#endif
import StorageIO
import VhostSystem

/// An I/O engine whose timing and failures the test decides (a stand-in inside unit tests
/// only): operations run at once with positioned I/O, each transfer cut to `maximumTransfer`
/// bytes, the next results replaced by `injected` ones, and completions reported when the
/// handler reaps, newest first if `newestFirst`.
final class ScriptedEngine: IOEngine {
    private let notifier: EventFD
    private var done: [(tag: UInt64, result: Int32)] = []
    /// Bytes one read or write moves at most: more is a short transfer.
    var maximumTransfer = Int.max
    /// Results returned, in order, instead of doing the next operations.
    var injected: [Int32] = []
    var newestFirst = false
    /// Operations refused (no room, as a full ring) before the engine takes any again.
    var refusals = 0
    /// The result of the next fdatasync instead of doing it.
    var injectOnSynchronize: Int32?
    private(set) var transfers = 0
    private(set) var synchronizations = 0

    init() throws {
        notifier = try EventFD(nonBlocking: true)
    }

    var kind: IOEngineKind { .ioUring }
    var completionNotifier: Int32? { notifier.rawValue }

    func read(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        transfer(fd, vectors, count: count, offset: offset, tag: tag, write: false)
    }

    func write(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64) -> Bool {
        transfer(fd, vectors, count: count, offset: offset, tag: tag, write: true)
    }

    func synchronize(_ fd: Int32, tag: UInt64) -> Bool {
        if refusals > 0 { refusals -= 1; return false }
        synchronizations += 1
        if let result = injectOnSynchronize {
            injectOnSynchronize = nil
            done.append((tag, result))
            return true
        }
        done.append((tag, fdatasync(fd) == 0 ? 0 : -errno))
        return true
    }

    private func transfer(_ fd: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, tag: UInt64,
                          write: Bool) -> Bool {
        if refusals > 0 { refusals -= 1; return false }
        transfers += 1
        if !injected.isEmpty { done.append((tag, injected.removeFirst())); return true }
        var limited: [iovec] = []
        var budget = maximumTransfer
        for index in 0..<count where budget > 0 {
            var vector = vectors[index]
            vector.iov_len = min(vector.iov_len, budget)
            budget -= vector.iov_len
            limited.append(vector)
        }
        let result = write
            ? pwritev(fd, limited, Int32(limited.count), off_t(offset))
            : preadv(fd, limited, Int32(limited.count), off_t(offset))
        done.append((tag, result >= 0 ? Int32(result) : -errno))
        return true
    }

    func submit() {
        if !done.isEmpty { try? notifier.signal() }
    }

    var hasCompletions: Bool { !done.isEmpty }

    func reap(into completions: IOCompletions) -> Int {
        _ = try? notifier.drain()
        let order = newestFirst ? Array(done.reversed()) : done
        done = []
        for completion in order { completions.append(tag: completion.tag, result: completion.result) }
        return order.count
    }
}
