/// One memory region of SET_MEM_TABLE or ADD/REM_MEM_REG (32 bytes):
/// `u64 guest_phys_addr; u64 memory_size; u64 userspace_addr; u64 mmap_offset`.
///
/// The region maps `size` bytes at `mmapOffset` of the accompanying file descriptor; the same
/// bytes are at `guestPhysicalAddress` for the guest and at `userAddress` in the front end.
/// A value of this type has a non-zero size and none of its three ranges wraps past 2^64.
public struct MemoryRegionDescription: Equatable, Hashable, Sendable {
    /// Guest physical address of the region's first byte.
    public let guestPhysicalAddress: UInt64
    /// Length of the region in bytes; never 0.
    public let size: UInt64
    /// The front end's virtual address of the region's first byte.
    public let userAddress: UInt64
    /// Offset of the region in the file descriptor's mapping.
    public let mmapOffset: UInt64

    /// The encoded length.
    public static let byteCount = 32

    /// Creates a validated region.
    ///
    /// - Throws: `.memoryRegionEmpty` if `size` is 0; `.addressOverflow` if
    ///   `guestPhysicalAddress + size`, `userAddress + size` or `mmapOffset + size`
    ///   exceeds `UInt64.max` (the exclusive end must be representable).
    public init(
        guestPhysicalAddress: UInt64, size: UInt64, userAddress: UInt64, mmapOffset: UInt64
    ) throws(ProtocolError) {
        guard size > 0 else {
            throw .memoryRegionEmpty
        }
        for (kind, start) in [
            (AddressKind.guestPhysical, guestPhysicalAddress),
            (.frontEndVirtual, userAddress),
            (.fileOffset, mmapOffset),
        ] where start.addingReportingOverflow(size).overflow {
            throw .addressOverflow(kind, start: start, size: size)
        }
        self.guestPhysicalAddress = guestPhysicalAddress
        self.size = size
        self.userAddress = userAddress
        self.mmapOffset = mmapOffset
    }

    /// Parses the 32-byte region.
    ///
    /// - Throws: `.payloadLengthMismatch`, `.memoryRegionEmpty`, `.addressOverflow`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }

    /// The exclusive end of the region in guest physical address space (cannot overflow).
    public var guestPhysicalEnd: UInt64 { guestPhysicalAddress &+ size }
    /// The exclusive end of the region in the front end's address space (cannot overflow).
    public var userEnd: UInt64 { userAddress &+ size }
}

extension MemoryRegionDescription: FixedSizePayload {
    static let payloadName = "memory region"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        let guestPhysicalAddress = try reader.readUInt64()
        let size = try reader.readUInt64()
        let userAddress = try reader.readUInt64()
        let mmapOffset = try reader.readUInt64()
        try self.init(
            guestPhysicalAddress: guestPhysicalAddress, size: size, userAddress: userAddress,
            mmapOffset: mmapOffset)
    }

    func write(to writer: inout ByteWriter) {
        writer.append(guestPhysicalAddress)
        writer.append(size)
        writer.append(userAddress)
        writer.append(mmapOffset)
    }
}
