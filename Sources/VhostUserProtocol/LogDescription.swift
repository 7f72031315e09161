/// The SET_LOG_BASE payload (`VhostUserLog`, 16 bytes): `u64 mmap_size; u64 mmap_offset`,
/// describing the dirty-page log in the accompanying shared-memory fd (LOG_SHMFD).
public struct LogDescription: Equatable, Hashable, Sendable {
    /// Size of the log area.
    public let mmapSize: UInt64
    /// Offset of the log area in the fd's mapping.
    public let mmapOffset: UInt64

    /// The encoded length.
    public static let byteCount = 16

    public init(mmapSize: UInt64, mmapOffset: UInt64) {
        self.mmapSize = mmapSize
        self.mmapOffset = mmapOffset
    }

    /// Parses the 16-byte payload.
    ///
    /// - Throws: `.payloadLengthMismatch`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension LogDescription: FixedSizePayload {
    static let payloadName = "log description"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        mmapSize = try reader.readUInt64()
        mmapOffset = try reader.readUInt64()
    }

    func write(to writer: inout ByteWriter) {
        writer.append(mmapSize)
        writer.append(mmapOffset)
    }
}
