import VhostSystem

/// One region of guest RAM mapped into this process: where it lies in the guest-physical and
/// front-end virtual address spaces, and the mapping that backs it.
///
/// Immutable and shared by reference: every `GuestMemory` table that contains the region, and
/// every request translated through such a table, keeps the mapping alive. The memory is unmapped
/// only when the last of them lets go, never while something may still read or write it.
public final class GuestMemoryRegion: Sendable {
    public let guestPhysicalStart: GuestPhysicalAddress
    public let frontEndVirtualStart: FrontEndVirtualAddress
    /// Length in bytes (non-zero; `start + size` fits in 64 bits in both spaces).
    public let size: UInt64
    /// Offset of the region's first byte in the file descriptor it was mapped from.
    public let mmapOffset: UInt64
    /// The mapping; it starts at `mmapOffset` rounded down to the page size.
    public let mapping: MemoryMapping
    /// Where the region's first byte lies inside `mapping` (`mmapOffset` modulo the page size).
    public let offsetInMapping: Int

    init(guestPhysicalStart: GuestPhysicalAddress, frontEndVirtualStart: FrontEndVirtualAddress, size: UInt64,
         mmapOffset: UInt64, mapping: MemoryMapping, offsetInMapping: Int) {
        self.guestPhysicalStart = guestPhysicalStart
        self.frontEndVirtualStart = frontEndVirtualStart
        self.size = size
        self.mmapOffset = mmapOffset
        self.mapping = mapping
        self.offsetInMapping = offsetInMapping
    }

    /// The host address of the region's first byte. Valid while the region is alive.
    public var hostStart: UnsafeMutableRawPointer {
        // SAFETY: offsetInMapping + size == mapping.length (checked in `map`), so the result
        // points inside the mapping.
        mapping.base + offsetInMapping
    }

    /// One past the region's last guest-physical address (cannot overflow: checked in `map`).
    public var guestPhysicalEnd: UInt64 { guestPhysicalStart.rawValue + size }

    /// One past the region's last front-end virtual address (cannot overflow: checked in `map`).
    public var frontEndVirtualEnd: UInt64 { frontEndVirtualStart.rawValue + size }

    /// Validates a region the front end described and maps it, shared and writable.
    ///
    /// Checks, in order: `size > 0`; `start + size` does not overflow in either address space,
    /// nor `mmapOffset + size`; for a regular file (memfd, hugetlbfs, tmpfs file) that the file is
    /// long enough to cover `mmapOffset + size`, since touching a page past its end raises SIGBUS.
    /// Other file types (a DAX character device) have no fstat size; mmap decides for them.
    /// The mapping starts at `mmapOffset` rounded down to the page size, so a large offset does
    /// not map the file from its start; the remainder is added to the region's host address.
    ///
    /// The descriptor is not kept: the mapping stays valid after it is closed.
    /// - Throws: `MemoryError.emptyRegion`, `.regionOverflow`, `.fileStatusFailed`,
    ///   `.mmapOffsetPastEndOfFile`, `.regionTooLargeToMap`, `.mappingFailed`.
    public static func map(
        descriptor: OwnedFileDescriptor,
        guestPhysicalStart: GuestPhysicalAddress,
        frontEndVirtualStart: FrontEndVirtualAddress,
        size: UInt64,
        mmapOffset: UInt64
    ) throws(MemoryError) -> GuestMemoryRegion {
        guard size > 0 else { throw .emptyRegion }
        guard !guestPhysicalStart.rawValue.addingReportingOverflow(size).overflow else {
            throw .regionOverflow(.guestPhysical, start: guestPhysicalStart.rawValue, size: size)
        }
        guard !frontEndVirtualStart.rawValue.addingReportingOverflow(size).overflow else {
            throw .regionOverflow(.frontEndVirtual, start: frontEndVirtualStart.rawValue, size: size)
        }
        let (fileEnd, fileEndOverflow) = mmapOffset.addingReportingOverflow(size)
        guard !fileEndOverflow else {
            throw .regionOverflow(.fileOffset, start: mmapOffset, size: size)
        }

        let fileSize: UInt64?
        do throws(SystemError) {
            fileSize = try descriptor.regularFileSize()
        } catch {
            throw .fileStatusFailed(error)
        }
        if let fileSize, fileEnd > fileSize {
            throw .mmapOffsetPastEndOfFile(mmapOffset: mmapOffset, size: size, fileSize: fileSize)
        }

        // The page size is a small positive power of two.
        let pageSize = UInt64(MemoryMapping.pageSize)
        let remainder = mmapOffset % pageSize
        let (mapLength, lengthOverflow) = size.addingReportingOverflow(remainder)
        guard !lengthOverflow, let offsetInMapping = Int(exactly: remainder), Int(exactly: mapLength) != nil else {
            throw .regionTooLargeToMap(size: size)
        }
        let mapping: MemoryMapping
        do throws(SystemError) {
            mapping = try MemoryMapping(descriptor: descriptor, offset: mmapOffset - remainder, length: mapLength)
        } catch {
            throw .mappingFailed(error)
        }
        return GuestMemoryRegion(guestPhysicalStart: guestPhysicalStart, frontEndVirtualStart: frontEndVirtualStart,
                                 size: size, mmapOffset: mmapOffset, mapping: mapping, offsetInMapping: offsetInMapping)
    }
}
