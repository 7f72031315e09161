/// The VRING_HOST_NOTIFIER_MSG payload (`VhostUserVringArea`, 24 bytes):
/// `u64 u64; u64 size; u64 offset`. The first word encodes the vring index and the no-fd bit
/// exactly like `VringFileIndex`; without an fd the front end removes the notifier.
public struct VringAreaDescription: Equatable, Hashable, Sendable {
    /// The vring index and whether an fd (the doorbell page's file) comes with the message.
    public let vring: VringFileIndex
    /// Size of the area; QEMU requires the host page size.
    public let size: UInt64
    /// Offset of the area in the fd's mapping.
    public let offset: UInt64

    /// The encoded length.
    public static let byteCount = 24

    public init(vring: VringFileIndex, size: UInt64, offset: UInt64) {
        self.vring = vring
        self.size = size
        self.offset = offset
    }

    /// Parses the 24-byte payload.
    ///
    /// - Throws: `.payloadLengthMismatch`, `.reservedVringFileBits`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension VringAreaDescription: FixedSizePayload {
    static let payloadName = "vring area"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        vring = try VringFileIndex(from: &reader)
        size = try reader.readUInt64()
        offset = try reader.readUInt64()
    }

    func write(to writer: inout ByteWriter) {
        vring.write(to: &writer)
        writer.append(size)
        writer.append(offset)
    }
}
