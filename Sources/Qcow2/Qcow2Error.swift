#if canImport(Glibc)
import Glibc
#endif

/// Why a qcow2 image cannot be opened or an operation on it failed. The image file is untrusted:
/// every refusal names what was wrong and where, so the user can compare with `qemu-img check`.
public enum Qcow2Error: Error, Equatable, Sendable, CustomStringConvertible {
    /// A read or write of the image (or a backing file) failed: the call and its errno.
    case io(path: String, call: String, errno: Int32)
    /// The file is too short for a structure the header promises.
    case truncated(path: String, what: String)
    /// Not a qcow2 image (the first four bytes are not "QFI\xfb").
    case notQcow2(path: String)
    /// A header field, header extension or table offset is outside what the format allows.
    case invalidHeader(path: String, reason: String)
    /// The image uses a feature this implementation does not serve (encryption, external data
    /// files, unknown incompatible bits, internal snapshots read-write, ...).
    case unsupported(path: String, feature: String)
    /// The image's corrupt or dirty bit is set, or metadata read while serving was found invalid:
    /// refused read-write (read-only opens still work).
    case corrupt(path: String, reason: String)
    /// The backing chain cannot be opened: a missing file, a loop, an undeclared format.
    case backing(path: String, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let call, let errno):
            return "\(path): \(call) failed: \(String(cString: strerror(errno))) (errno \(errno))"
        case .truncated(let path, let what):
            return "\(path): the file ends inside the \(what)"
        case .notQcow2(let path):
            return "\(path): not a qcow2 image (no QFI\\xfb magic)"
        case .invalidHeader(let path, let reason):
            return "\(path): invalid qcow2 header: \(reason)"
        case .unsupported(let path, let feature):
            return "\(path): unsupported qcow2 feature: \(feature)"
        case .corrupt(let path, let reason):
            return "\(path): qcow2 image is corrupt: \(reason)"
        case .backing(let path, let reason):
            return "\(path): backing file: \(reason)"
        }
    }
}
