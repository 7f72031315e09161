#if canImport(Glibc)
import Glibc
#endif

/// One mmap of a file, unmapped when the last owner lets go.
///
/// Shared by reference: a guest memory table rebuilt after ADD_MEM_REG keeps the mappings of the
/// regions it did not change, and a request in flight keeps the table it started with alive, so a
/// region is never unmapped while something still reads or writes it.
public final class MemoryMapping: @unchecked Sendable {
    // SAFETY (Sendable): the fields are immutable; the memory behind them is shared with another
    // process anyway, and every access to it goes through bounds-checked, copying accessors.
    public let base: UnsafeMutableRawPointer
    public let length: Int
    public let writable: Bool

    /// Maps `length` bytes of `descriptor` at `offset`, shared, readable and optionally writable.
    /// `offset` must be page aligned (mmap rejects it otherwise with EINVAL).
    public init(descriptor: OwnedFileDescriptor, offset: UInt64, length: UInt64, writable: Bool = true) throws(SystemError) {
        guard let mapLength = Int(exactly: length), mapLength > 0, let fileOffset = off_t(exactly: offset) else {
            throw SystemError(call: "mmap", errno: EINVAL)
        }
        let protection = PROT_READ | (writable ? PROT_WRITE : 0)
        let address = mmap(nil, mapLength, protection, MAP_SHARED, descriptor.rawValue, fileOffset)
        guard let address, address != MAP_FAILED else {
            throw SystemError(call: "mmap", errno: errno)
        }
        base = address
        self.length = mapLength
        self.writable = writable
    }

    /// Anonymous private memory (for tests and scratch buffers).
    public init(anonymousLength length: Int) throws(SystemError) {
        guard length > 0 else { throw SystemError(call: "mmap", errno: EINVAL) }
        let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let address, address != MAP_FAILED else {
            throw SystemError(call: "mmap", errno: errno)
        }
        base = address
        self.length = length
        writable = true
    }

    deinit {
        _ = munmap(base, length)
    }

    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: length)
    }

    /// The system page size.
    public static let pageSize: Int = Int(sysconf(Int32(_SC_PAGESIZE)))
}
