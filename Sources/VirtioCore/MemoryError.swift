import VhostSystem

/// Why a guest memory region could not be mapped or a memory table could not be built.
///
/// Consequence: every case rejects the change as a whole. The table in force before the
/// message stays in force (tables are immutable and replaced whole), and the back end fails the
/// front end's message (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG).
public enum MemoryError: Error, Equatable, Sendable {
    /// The address space a range check failed in.
    public enum AddressSpace: Equatable, Sendable {
        case guestPhysical
        case frontEndVirtual
        /// Offsets into the file descriptor (`mmap_offset`).
        case fileOffset
    }

    /// A region of size zero.
    case emptyRegion
    /// `start + size` passes 2^64 - 1 in `space`.
    case regionOverflow(AddressSpace, start: UInt64, size: UInt64)
    /// The region does not fit in this process's address space.
    case regionTooLargeToMap(size: UInt64)
    /// `mmapOffset + size` lies past the end of the (regular) file: touching it would raise SIGBUS.
    case mmapOffsetPastEndOfFile(mmapOffset: UInt64, size: UInt64, fileSize: UInt64)
    /// fstat on the region's descriptor failed.
    case fileStatusFailed(SystemError)
    /// mmap failed.
    case mappingFailed(SystemError)
    /// Two regions overlap in `space`; `first` and `second` are their starts in that space.
    case overlappingRegions(AddressSpace, first: UInt64, second: UInt64)
    /// The table would have more regions than the limit we advertised.
    case tooManyRegions(count: Int, limit: Int)
    /// REM_MEM_REG named a region that is not in the table (matched by both starts and the size).
    case noMatchingRegion(guestPhysicalStart: GuestPhysicalAddress, frontEndVirtualStart: FrontEndVirtualAddress, size: UInt64)
}
