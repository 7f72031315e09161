/// The u64 payload of SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR (8 bytes): bits 0–7 are
/// the vring index; bit 8 set means no file descriptor comes with the message (the back end
/// must poll, or has no call/err notifier). Every other bit is rejected.
///
/// The same encoding is the first field of the back end's VRING_HOST_NOTIFIER_MSG.
public struct VringFileIndex: Equatable, Hashable, Sendable {
    /// The vring (queue) index, 0...255.
    public let index: UInt32
    /// Whether a file descriptor accompanies the message (bit 8 clear).
    public let hasFileDescriptor: Bool

    /// The encoded length.
    public static let byteCount = 8
    /// Bits 0–7: the vring index.
    public static let indexMask: UInt64 = 0xFF
    /// Bit 8: `VHOST_USER_VRING_NOFD_MASK`.
    public static let noFileDescriptorBit: UInt64 = 0x100

    /// Creates a vring file index.
    ///
    /// - Throws: `.queueIndexOutOfRange(index:count: 256)` if `index` does not fit in 8 bits.
    public init(index: UInt32, hasFileDescriptor: Bool) throws(ProtocolError) {
        guard UInt64(index) <= Self.indexMask else {
            throw .queueIndexOutOfRange(index: index, count: 256)
        }
        self.index = index
        self.hasFileDescriptor = hasFileDescriptor
    }

    /// Decodes the u64 value.
    ///
    /// - Throws: `.reservedVringFileBits` if bits other than 0–8 are set.
    public init(rawValue: UInt64) throws(ProtocolError) {
        guard rawValue & ~(Self.indexMask | Self.noFileDescriptorBit) == 0 else {
            throw .reservedVringFileBits(rawValue)
        }
        index = UInt32(truncatingIfNeeded: rawValue & Self.indexMask)
        hasFileDescriptor = rawValue & Self.noFileDescriptorBit == 0
    }

    /// Parses the 8-byte payload.
    ///
    /// - Throws: `.payloadLengthMismatch`, `.reservedVringFileBits`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }

    /// The u64 as sent on the wire.
    public var rawValue: UInt64 {
        UInt64(index) | (hasFileDescriptor ? 0 : Self.noFileDescriptorBit)
    }

    /// How many file descriptors come with the message: 1, or 0 when bit 8 is set.
    public var fileDescriptorCount: Int { hasFileDescriptor ? 1 : 0 }
}

extension VringFileIndex: FixedSizePayload {
    static let payloadName = "vring file index"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        try self.init(rawValue: try reader.readUInt64())
    }

    func write(to writer: inout ByteWriter) {
        writer.append(rawValue)
    }
}
