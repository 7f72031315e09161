import VirtioSpec

/// The 16-byte request header the driver puts first in every request:
/// `le32 type; le32 reserved (ioprio); le64 sector`.
public struct BlockRequestHeader: Equatable, Sendable {
    public static let byteCount = 16

    public var rawType: UInt32
    public var sector: UInt64

    public init(rawType: UInt32, sector: UInt64) {
        self.rawType = rawType
        self.sector = sector
    }

    /// Decodes a copy of the header bytes (guest memory is never read twice).
    public init(copiedBytes bytes: UnsafeRawBufferPointer) {
        rawType = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        sector = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    public var type: BlockRequestType? { BlockRequestType(rawValue: rawType) }
}
