#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, and the errno it left.
///
/// The one error type of the system layer. Callers decide the consequence (close the connection,
/// fail a request); this layer only reports.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        let message = strerror(errno).map { String(cString: $0) } ?? "errno \(errno)"
        return "\(call): \(message) (errno \(errno))"
    }
}
