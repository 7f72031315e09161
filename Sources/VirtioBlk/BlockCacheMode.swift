#if canImport(Glibc)
import Glibc
#endif
import VhostSystem

/// How the image is cached, named and behaving as QEMU's cache modes do (`--cache`).
public enum BlockCacheMode: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The host page cache holds writes; FLUSH is an fdatasync. The driver may switch to
    /// writethrough (CONFIG_WCE).
    case writeback
    /// O_DIRECT: the host does not cache the disk; FLUSH is an fdatasync (the device's own
    /// cache). The driver may switch to writethrough.
    case none
    /// O_DIRECT and O_DSYNC: every write is stable when it completes (writethrough, fixed).
    case directsync
    /// The host page cache, and FLUSH does nothing: fast, and a host crash loses data.
    case unsafe

    public var description: String { rawValue }

    /// Whether the image is opened with O_DIRECT.
    public var bypassesPageCache: Bool { self == .none || self == .directsync }

    /// open(2) flags the mode adds.
    public var openFlags: Int32 {
        switch self {
        case .writeback, .unsafe: return 0
        case .none: return OwnedFileDescriptor.directIOFlag
        case .directsync: return OwnedFileDescriptor.directIOFlag | O_DSYNC
        }
    }

    /// Whether every write is stable when it completes, without an fdatasync of its own.
    public var writesAreStable: Bool { self == .directsync }

    /// Whether FLUSH (and writethrough's fdatasync after each write) is skipped.
    public var ignoresFlush: Bool { self == .unsafe }

    /// The configuration space's writeback byte at reset: 1 writeback, 0 writethrough.
    public var writebackAtReset: UInt8 { self == .directsync ? 0 : 1 }

    /// Whether the driver may change the writeback byte (VIRTIO_BLK_F_CONFIG_WCE): not when the
    /// host fixed writethrough.
    public var driverMayToggleWriteback: Bool { self != .directsync }
}
