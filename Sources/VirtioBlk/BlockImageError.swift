import VhostSystem

/// Why a disk image cannot be served, found when it is opened.
public enum BlockImageError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, SystemError)
    case notAFileOrBlockDevice(path: String)
    case sizeNotMultipleOfSectorSize(path: String, size: UInt64)
    case empty(path: String)
    case system(SystemError)

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
        case .system(let error):
            "\(error)"
        }
    }
}
