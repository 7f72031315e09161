#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// Sole owner of an open file descriptor: it is closed exactly once, when the owner goes away.
///
/// A class rather than a `~Copyable` struct because descriptors are handed between the control
/// plane and queue workers and kept in collections; the descriptor stays open for as long as any
/// holder needs it (a worker still polling an old kick fd keeps it alive until it lets go).
/// Wrap every descriptor the moment it is received or created, so every error path closes it.
public final class OwnedFileDescriptor: @unchecked Sendable {
    // SAFETY (Sendable): `rawValue` is immutable; the kernel object is safe to use from any thread.
    public let rawValue: Int32

    /// Takes ownership of `rawValue` (which must be open and owned by nobody else).
    public init(adopting rawValue: Int32) {
        self.rawValue = rawValue
    }

    deinit {
        // Not retried on EINTR: Linux releases the descriptor whatever close returns.
        _ = Glibc.close(rawValue)
    }

    /// The file's size from fstat.
    public func size() throws(SystemError) -> UInt64 {
        var info = stat()
        _ = try retryingInterrupts("fstat") { fstat(rawValue, &info) }
        return UInt64(clamping: info.st_size)
    }

    /// Whether the descriptor refers to a block device (fstat's S_IFBLK).
    public func isBlockDevice() throws(SystemError) -> Bool {
        var info = stat()
        _ = try retryingInterrupts("fstat") { fstat(rawValue, &info) }
        return (info.st_mode & S_IFMT) == S_IFBLK
    }

    /// Whether the descriptor refers to a regular file.
    public func isRegularFile() throws(SystemError) -> Bool {
        var info = stat()
        _ = try retryingInterrupts("fstat") { fstat(rawValue, &info) }
        return (info.st_mode & S_IFMT) == S_IFREG
    }

    /// The size of a regular file (memfd, tmpfs or hugetlbfs file), in one fstat; nil for other
    /// kinds (a DAX character device), which have no size to check a mapping against.
    public func regularFileSize() throws(SystemError) -> UInt64? {
        var info = stat()
        _ = try retryingInterrupts("fstat") { fstat(rawValue, &info) }
        return (info.st_mode & S_IFMT) == S_IFREG ? UInt64(clamping: info.st_size) : nil
    }

    /// Whether both descriptors refer to the same file (fstat's device and inode), however each
    /// was obtained: a memfd that went to a peer and came back is the same file.
    public func refersToSameFile(as other: OwnedFileDescriptor) throws(SystemError) -> Bool {
        var mine = stat()
        var theirs = stat()
        _ = try retryingInterrupts("fstat") { fstat(rawValue, &mine) }
        _ = try retryingInterrupts("fstat") { fstat(other.rawValue, &theirs) }
        return mine.st_dev == theirs.st_dev && mine.st_ino == theirs.st_ino
    }

    /// Sets or clears O_NONBLOCK.
    public func setNonBlocking(_ nonBlocking: Bool) throws(SystemError) {
        let flags = try retryingInterrupts("fcntl(F_GETFL)") { fcntl(rawValue, F_GETFL) }
        let wanted = nonBlocking ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        if wanted != flags {
            _ = try retryingInterrupts("fcntl(F_SETFL)") { fcntl(rawValue, F_SETFL, wanted) }
        }
    }

    /// O_DIRECT, for `open`'s flags: transfers bypass the page cache (and must be aligned).
    public static let directIOFlag: Int32 = CVB_O_DIRECT

    /// Opens a path. `flags` are open(2) flags; O_CLOEXEC is always added.
    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o600) throws(SystemError) -> OwnedFileDescriptor {
        let fd = try retryingInterrupts("open(\(path))") { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return OwnedFileDescriptor(adopting: fd)
    }

    /// Number of descriptors this process has open (from /proc/self/fd), for leak checks.
    public static func openDescriptorCount() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(directory) }
        var count = 0
        while readdir(directory) != nil { count += 1 }
        // ".", ".." and the directory stream's own descriptor.
        return count - 3
    }
}
