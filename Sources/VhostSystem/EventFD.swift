#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// An eventfd: a kernel counter used for kick and call notifications and for waking workers.
public final class EventFD: Sendable {
    public let descriptor: OwnedFileDescriptor

    /// Creates a new eventfd (close-on-exec).
    public init(nonBlocking: Bool = true, initialValue: UInt32 = 0) throws(SystemError) {
        let flags = CVB_EFD_CLOEXEC | (nonBlocking ? CVB_EFD_NONBLOCK : 0)
        let fd = try retryingInterrupts("eventfd") { cvb_eventfd(initialValue, flags) }
        descriptor = OwnedFileDescriptor(adopting: fd)
    }

    /// Wraps a descriptor received from the front end. Nothing checks that it really is an
    /// eventfd: writes and reads on it simply fail or misbehave, which only hurts the sender.
    public init(adopting descriptor: OwnedFileDescriptor) {
        self.descriptor = descriptor
    }

    public var rawValue: Int32 { descriptor.rawValue }

    /// Adds one to the counter. A full counter (EAGAIN) already wakes the reader, so it is not
    /// an error.
    @inline(__always)
    public func signal() throws(SystemError) {
        var one: UInt64 = 1
        _ = try retryingInterruptsOrWouldBlock("write(eventfd)") {
            withUnsafeBytes(of: &one) { write(descriptor.rawValue, $0.baseAddress, 8) }
        }
    }

    /// Reads and resets the counter; nil when it was zero (non-blocking descriptor).
    @inline(__always)
    public func drain() throws(SystemError) -> UInt64? {
        var value: UInt64 = 0
        let count = try retryingInterruptsOrWouldBlock("read(eventfd)") {
            withUnsafeMutableBytes(of: &value) { read(descriptor.rawValue, $0.baseAddress, 8) }
        }
        return count == nil ? nil : value
    }
}
