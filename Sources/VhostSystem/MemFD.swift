#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// Anonymous shared memory files (memfd_create), as QEMU's memory-backend-memfd uses for guest
/// RAM and as back ends use for areas they export to the front end.
public enum MemFD {
    /// Creates a memfd of `size` bytes (close-on-exec). With `allowSealing`, seals can be added
    /// later with `seal(_:)`.
    public static func create(name: String, size: UInt64, allowSealing: Bool = false) throws(SystemError) -> OwnedFileDescriptor {
        let flags = UInt32(CVB_MFD_CLOEXEC | (allowSealing ? CVB_MFD_ALLOW_SEALING : 0))
        let fd = try retryingInterrupts("memfd_create") { cvb_memfd_create(name, flags) }
        let owner = OwnedFileDescriptor(adopting: fd)
        guard let length = off_t(exactly: size) else {
            throw SystemError(call: "ftruncate(memfd)", errno: EINVAL)
        }
        _ = try retryingInterrupts("ftruncate(memfd)") { ftruncate(owner.rawValue, length) }
        return owner
    }

    /// Whether `descriptor` can never shrink (F_SEAL_SHRINK): a mapping of it cannot lose pages
    /// under us (which would be SIGBUS on access). False for anything that is not a sealed memfd.
    public static func cannotShrink(_ descriptor: OwnedFileDescriptor) -> Bool {
        let seals = cvb_memfd_get_seals(descriptor.rawValue)
        return seals >= 0 && seals & CVB_F_SEAL_SHRINK != 0
    }

    /// Forbids growing, shrinking and further sealing: the size the receiver maps is final.
    public static func sealSize(_ descriptor: OwnedFileDescriptor) throws(SystemError) {
        _ = try retryingInterrupts("fcntl(F_ADD_SEALS)") {
            cvb_memfd_add_seals(descriptor.rawValue, CVB_F_SEAL_SHRINK | CVB_F_SEAL_GROW | CVB_F_SEAL_SEAL)
        }
    }

    /// Frees the pages of `length` bytes at `offset` (a hole: they read as zeroes again), keeping
    /// the file's size, which its seals may fix.
    public static func discard(_ descriptor: OwnedFileDescriptor, offset: UInt64, length: UInt64) throws(SystemError) {
        _ = try retryingInterrupts("fallocate(PUNCH_HOLE)") {
            cvb_fallocate(descriptor.rawValue, CVB_FALLOC_FL_PUNCH_HOLE | CVB_FALLOC_FL_KEEP_SIZE, offset, length)
        }
    }
}
