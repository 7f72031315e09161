/// The `VhostUserShared` payload (16 bytes): the UUID of a shared object (a dma-buf), used by
/// GET_SHARED_OBJECT and the back end's SHARED_OBJECT_ADD/REMOVE/LOOKUP (QEMU 8.2+).
public struct SharedObjectID: Equatable, Hashable, Sendable {
    /// The 16 UUID bytes in wire order.
    public let uuid: [UInt8]

    /// The encoded length.
    public static let byteCount = 16

    /// Creates an ID from 16 bytes.
    ///
    /// - Throws: `.payloadLengthMismatch` if `uuid` is not 16 bytes long.
    public init(uuid: [UInt8]) throws(ProtocolError) {
        guard uuid.count == Self.byteCount else {
            throw .payloadLengthMismatch(payload: Self.payloadName, expected: Self.byteCount, actual: uuid.count)
        }
        self.uuid = uuid
    }

    /// Parses the 16-byte payload.
    ///
    /// - Throws: `.payloadLengthMismatch`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension SharedObjectID: FixedSizePayload {
    static let payloadName = "shared object UUID"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        uuid = try reader.readBytes(Self.byteCount)
    }

    func write(to writer: inout ByteWriter) {
        writer.append(contentsOf: uuid)
    }
}
