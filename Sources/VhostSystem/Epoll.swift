#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// An epoll instance with preallocated result buffers, so waiting allocates nothing.
///
/// Registration (`add`, `modify`, `remove`) may be called from any thread; `wait` and the
/// results it fills must be used by one thread at a time (the worker that owns the instance).
public final class Epoll: @unchecked Sendable {
    public struct Events: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: CVB_EPOLLIN)
        public static let writable = Events(rawValue: CVB_EPOLLOUT)
        public static let error = Events(rawValue: CVB_EPOLLERR)
        public static let hangUp = Events(rawValue: CVB_EPOLLHUP)
    }

    public let descriptor: OwnedFileDescriptor
    public let capacity: Int
    // SAFETY: written only by `wait` on the owning thread and read by it afterwards.
    private let tokens: UnsafeMutablePointer<UInt64>
    private let readyEvents: UnsafeMutablePointer<UInt32>

    public init(capacity: Int = 64) throws(SystemError) {
        let fd = try retryingInterrupts("epoll_create1") { cvb_epoll_create() }
        descriptor = OwnedFileDescriptor(adopting: fd)
        self.capacity = min(max(capacity, 1), 64)
        tokens = .allocate(capacity: self.capacity)
        readyEvents = .allocate(capacity: self.capacity)
    }

    deinit {
        tokens.deallocate()
        readyEvents.deallocate()
    }

    /// Watches `fd` for `events`; `token` comes back from `wait` when it is ready.
    public func add(_ fd: Int32, events: Events = .readable, token: UInt64) throws(SystemError) {
        _ = try retryingInterrupts("epoll_ctl(ADD)") {
            cvb_epoll_ctl(descriptor.rawValue, CVB_EPOLL_CTL_ADD, fd, events.rawValue, token)
        }
    }

    public func modify(_ fd: Int32, events: Events = .readable, token: UInt64) throws(SystemError) {
        _ = try retryingInterrupts("epoll_ctl(MOD)") {
            cvb_epoll_ctl(descriptor.rawValue, CVB_EPOLL_CTL_MOD, fd, events.rawValue, token)
        }
    }

    /// Stops watching `fd`. A descriptor that was never added (ENOENT) is not an error.
    public func remove(_ fd: Int32) throws(SystemError) {
        let result = cvb_epoll_ctl(descriptor.rawValue, CVB_EPOLL_CTL_DEL, fd, 0, 0)
        if result < 0 && errno != ENOENT && errno != EBADF {
            throw SystemError(call: "epoll_ctl(DEL)", errno: errno)
        }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and returns how many entries are ready;
    /// read them with `token(at:)` and `events(at:)`. An interrupted wait returns 0.
    public func wait(timeoutMilliseconds: Int32) throws(SystemError) -> Int {
        let count = cvb_epoll_wait(descriptor.rawValue, tokens, readyEvents, Int32(capacity), timeoutMilliseconds)
        if count < 0 {
            if errno == EINTR { return 0 }
            throw SystemError(call: "epoll_wait", errno: errno)
        }
        return Int(count)
    }

    @inline(__always)
    public func token(at index: Int) -> UInt64 { tokens[index] }

    @inline(__always)
    public func events(at index: Int) -> Events { Events(rawValue: readyEvents[index]) }
}
