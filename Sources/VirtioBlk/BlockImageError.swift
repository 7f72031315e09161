import Qcow2
import VhostSystem

/// Why a disk image cannot be served, found when it is opened.
public enum BlockImageError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, SystemError)
    case notAFileOrBlockDevice(path: String)
    case sizeNotMultipleOfSectorSize(path: String, size: UInt64)
    case empty(path: String)
    /// The cache mode needs O_DIRECT and the file system does not do it.
    case directIOUnsupported(path: String, cache: BlockCacheMode, SystemError?)
    case sizeNotMultipleOfDirectAlignment(path: String, size: UInt64, alignment: Int)
    case system(SystemError)
    /// `--format=qcow2` and the image (or its backing chain) cannot be served.
    case qcow2(Qcow2Error)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let error):
            "cannot open disk image \(path): \(error)"
        case .notAFileOrBlockDevice(let path):
            "\(path) is neither a regular file nor a block device"
        case .sizeNotMultipleOfSectorSize(let path, let size):
            "disk image \(path) is \(size) bytes, not a multiple of the 512-byte sector; resize it (e.g. truncate -s) first"
        case .empty(let path):
            "disk image \(path) is empty"
        case .directIOUnsupported(let path, let cache, let error):
            "--cache=\(cache) opens \(path) with O_DIRECT, which its file system refuses"
                + (error.map { " (\($0))" } ?? "") + "; use --cache=writeback or move the image"
        case .sizeNotMultipleOfDirectAlignment(let path, let size, let alignment):
            "disk image \(path) is \(size) bytes, not a multiple of the \(alignment) bytes O_DIRECT needs on its file system; resize it or use --cache=writeback"
        case .system(let error):
            "\(error)"
        case .qcow2(let error):
            "\(error)"
        }
    }
}
