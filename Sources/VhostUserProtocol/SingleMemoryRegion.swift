/// The ADD_MEM_REG / REM_MEM_REG payload (40 bytes): `u64 padding; region`.
///
/// ADD_MEM_REG comes with the region's file descriptor. REM_MEM_REG identifies the region to
/// remove by guest address, user address and size (QEMU sends mmap_offset 0); it carries no
/// fd, though older QEMU sent one, which the back end may accept and close.
public struct SingleMemoryRegion: Equatable, Hashable, Sendable {
    /// The region (already validated).
    public let region: MemoryRegionDescription

    /// The encoded length.
    public static let byteCount = 40

    public init(region: MemoryRegionDescription) {
        self.region = region
    }

    /// Parses the 40-byte payload; the leading padding is ignored.
    ///
    /// - Throws: `.payloadLengthMismatch`, `.memoryRegionEmpty`, `.addressOverflow`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension SingleMemoryRegion: FixedSizePayload {
    static let payloadName = "single memory region"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        try reader.skip(8)  // padding
        region = try MemoryRegionDescription(from: &reader)
    }

    func write(to writer: inout ByteWriter) {
        writer.append(UInt64(0))  // padding
        region.write(to: &writer)
    }
}
