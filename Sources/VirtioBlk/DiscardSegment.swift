/// One range of a DISCARD or WRITE_ZEROES request:
/// `le64 sector; le32 num_sectors; le32 flags` (flags bit 0: unmap).
public struct DiscardSegment: Equatable, Sendable {
    public static let byteCount = 16
    public static let unmapFlag: UInt32 = 1

    public var sector: UInt64
    public var sectorCount: UInt32
    public var flags: UInt32

    public init(sector: UInt64, sectorCount: UInt32, flags: UInt32) {
        self.sector = sector
        self.sectorCount = sectorCount
        self.flags = flags
    }

    public init(copiedBytes bytes: UnsafeRawBufferPointer) {
        sector = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        sectorCount = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        flags = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
    }

    public var unmap: Bool { flags & Self.unmapFlag != 0 }
}
