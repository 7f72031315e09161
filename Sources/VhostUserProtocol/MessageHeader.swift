/// The 12-byte header in front of every vhost-user message:
/// `u32 request; u32 flags; u32 size` in host (little-endian) byte order.
public struct MessageHeader: Equatable, Sendable {
    /// The request code; its meaning depends on the channel (`VhostUserRequest` on the main
    /// socket, `BackendRequest` on the back-end channel).
    public var request: UInt32
    public var flags: MessageFlags
    /// The length of the payload that follows the header.
    public var size: UInt32

    /// The length of an encoded header.
    public static let byteCount = 12

    /// The largest payload this library accepts, in bytes.
    ///
    /// The specification names no limit. The largest payloads a block back end receives are
    /// SET_MEM_TABLE (8 + 8·32 = 264) and GET/SET_CONFIG (12 + 256 = 268); QEMU's own bound,
    /// `sizeof(VhostUserPayload)`, is about 632 bytes in 7.2 (the crypto-session struct). One
    /// 4 KiB page sits above every legal payload, leaves room for larger future messages, and
    /// bounds the read buffer a peer can make us allocate.
    public static let maximumPayloadSize = 4096

    /// Creates a header from its fields, without validation (see `validate()`).
    public init(request: UInt32, flags: MessageFlags, size: UInt32) {
        self.request = request
        self.flags = flags
        self.size = size
    }

    /// Parses and validates a header: exactly 12 bytes, version 1, no reserved flag bits,
    /// and a payload size of at most `maximumPayloadSize`.
    ///
    /// - Throws: `.wrongHeaderSize`, `.badVersion`, `.reservedFlagBits`, `.payloadTooLarge`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        guard bytes.count == Self.byteCount else {
            throw .wrongHeaderSize(bytes.count)
        }
        var reader = try ByteReader(bytes, exactly: Self.byteCount, payload: "message header")
        request = try reader.readUInt32()
        flags = MessageFlags(rawValue: try reader.readUInt32())
        size = try reader.readUInt32()
        try validate()
    }

    /// Checks the rules `init(parsing:)` enforces, for a header built field by field.
    ///
    /// - Throws: `.badVersion`, `.reservedFlagBits`, `.payloadTooLarge`.
    public func validate() throws(ProtocolError) {
        guard flags.version == 1 else {
            throw .badVersion(flags: flags.rawValue)
        }
        guard flags.rawValue & ~MessageFlags.definedBits == 0 else {
            throw .reservedFlagBits(flags: flags.rawValue)
        }
        guard let size = Int(exactly: size), size <= Self.maximumPayloadSize else {
            throw .payloadTooLarge(size: size, limit: Self.maximumPayloadSize)
        }
    }

    /// The 12 encoded bytes.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.byteCount)
        write(to: &writer)
        return writer.bytes
    }

    /// Writes the 12 encoded bytes to the start of `buffer`, which must hold at least 12 bytes
    /// (a caller bug otherwise; this traps).
    public func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Self.byteCount, "header buffer smaller than 12 bytes")
        for (index, byte) in encoded().enumerated() {
            buffer[index] = byte
        }
    }

    func write(to writer: inout ByteWriter) {
        writer.append(request)
        writer.append(flags.rawValue)
        writer.append(size)
    }
}
