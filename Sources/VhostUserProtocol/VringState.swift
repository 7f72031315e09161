/// The vring state payload (`struct vhost_vring_state`): `u32 index; u32 num` (8 bytes).
///
/// Used by SET_VRING_NUM (num = queue size), SET/GET_VRING_BASE (num = ring position),
/// SET_VRING_ENABLE (num = 0/1), SET_VRING_ENDIAN (num = 0/1), VRING_KICK, and the back end's
/// VRING_CALL/ERR. What `num` may be depends on the request and is checked by the decoders.
public struct VringState: Equatable, Hashable, Sendable {
    /// The vring (queue) index.
    public let index: UInt32
    /// The request-specific value.
    public let num: UInt32

    /// The encoded length.
    public static let byteCount = 8

    public init(index: UInt32, num: UInt32) {
        self.index = index
        self.num = num
    }

    /// Parses the 8-byte payload.
    ///
    /// - Throws: `.payloadLengthMismatch` if `bytes` is not 8 bytes long.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension VringState: FixedSizePayload {
    static let payloadName = "vring state"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        index = try reader.readUInt32()
        num = try reader.readUInt32()
    }

    func write(to writer: inout ByteWriter) {
        writer.append(index)
        writer.append(num)
    }
}
