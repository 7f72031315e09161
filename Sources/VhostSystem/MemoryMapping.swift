#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

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

    /// One page-aligned range of a shared mapping, to appear at `offset` in an aliasing view.
    public struct AliasedPiece {
        public let source: UnsafeRawPointer
        public let offset: Int
        public let length: Int

        public init(source: UnsafeRawPointer, offset: Int, length: Int) {
            self.source = source
            self.offset = offset
            self.length = length
        }
    }

    /// A contiguous view of shared pages that lie apart elsewhere in this process: `length`
    /// bytes are reserved, then each piece's pages are mapped a second time at its offset
    /// (mremap with an old size of 0 duplicates a shared mapping). The view maps the pages
    /// itself, so it stays valid after the mappings it was made from are gone.
    ///
    /// Every source, offset and length must be page-aligned and the pieces must cover the
    /// view; otherwise, or when the kernel refuses, it throws and nothing stays mapped.
    public init(aliasing pieces: [AliasedPiece], length: Int) throws(SystemError) {
        let page = Self.pageSize
        guard length > 0, length % page == 0 else { throw SystemError(call: "mremap(alias)", errno: EINVAL) }
        var covered = 0
        for piece in pieces {
            guard piece.offset == covered, piece.length > 0, piece.length % page == 0,
                  UInt(bitPattern: piece.source) % UInt(page) == 0 else {
                throw SystemError(call: "mremap(alias)", errno: EINVAL)
            }
            covered += piece.length
        }
        guard covered == length else { throw SystemError(call: "mremap(alias)", errno: EINVAL) }
        let reserved = mmap(nil, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let reserved, reserved != MAP_FAILED else { throw SystemError(call: "mmap(reserve)", errno: errno) }
        for piece in pieces {
            // SAFETY: the target lies inside the reservation (offsets are checked to tile it);
            // MREMAP_FIXED replaces the reserved pages there and nothing else.
            let placed = cvb_mremap_alias(UnsafeMutableRawPointer(mutating: piece.source), piece.length,
                                          reserved + piece.offset)
            guard let placed, placed != MAP_FAILED else {
                let error = errno
                _ = munmap(reserved, length)
                throw SystemError(call: "mremap(alias)", errno: error)
            }
        }
        base = reserved
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
