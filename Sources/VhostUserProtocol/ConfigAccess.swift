/// The GET_CONFIG / SET_CONFIG payload (`VhostUserConfig`): `u32 offset; u32 size; u32 flags;
/// u8 region[size]`, i.e. 12 + size bytes.
///
/// For GET_CONFIG the front end sends `size` zero bytes and the reply carries the same
/// offset, size and flags with the device's bytes; for SET_CONFIG `bytes` are the new values.
/// A value of this type has size 1...256, offset + size ≤ 256 (`VHOST_USER_MAX_CONFIG_SIZE`)
/// and flags 0 or 1.
public struct ConfigAccess: Equatable, Hashable, Sendable {
    /// Byte offset into the device's config space.
    public let offset: UInt32
    /// `VHOST_SET_CONFIG_TYPE_FRONTEND` (0, a write by the driver) or `..._MIGRATION` (1).
    public let flags: UInt32
    /// The config bytes; `size` of them.
    public let bytes: [UInt8]

    /// Length of the offset/size/flags prefix.
    public static let headerByteCount = 12
    /// `VHOST_USER_MAX_CONFIG_SIZE`: the config space is at most 256 bytes.
    public static let maximumSize: UInt32 = 256
    /// Flags value of a normal access by the front end on behalf of the driver.
    public static let frontEndFlags: UInt32 = 0
    /// Flags value of an access during live migration.
    public static let migrationFlags: UInt32 = 1

    /// Creates a validated config access.
    ///
    /// - Throws: `.invalidConfigAccess` unless 1 ≤ bytes.count and offset + bytes.count ≤ 256;
    ///   `.invalidConfigFlags` unless flags is 0 or 1.
    public init(offset: UInt32, flags: UInt32 = 0, bytes: [UInt8]) throws(ProtocolError) {
        let size = UInt32(clamping: bytes.count)
        try Self.check(offset: offset, size: size, flags: flags)
        self.offset = offset
        self.flags = flags
        self.bytes = bytes
    }

    /// A GET_CONFIG request for `size` bytes at `offset`: the bytes are zero, as QEMU sends them.
    ///
    /// - Throws: as `init(offset:flags:bytes:)`.
    public static func read(offset: UInt32, size: UInt32, flags: UInt32 = 0) throws(ProtocolError) -> ConfigAccess {
        try check(offset: offset, size: size, flags: flags)
        return try ConfigAccess(offset: offset, flags: flags, bytes: Array(repeating: 0, count: Int(size)))
    }

    /// Parses the payload: prefix present, size and offset in range, flags valid, then length
    /// exactly 12 + size.
    ///
    /// - Throws: `.payloadLengthMismatch`, `.invalidConfigAccess`, `.invalidConfigFlags`.
    public init(parsing payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        var reader = try ByteReader(payload, atLeast: Self.headerByteCount, payload: "config access")
        let offset = try reader.readUInt32()
        let size = try reader.readUInt32()
        let flags = try reader.readUInt32()
        try Self.check(offset: offset, size: size, flags: flags)
        // size ≤ 256 here, so the sum cannot overflow.
        let expected = Self.headerByteCount + Int(size)
        guard payload.count == expected else {
            throw .payloadLengthMismatch(payload: "config access", expected: expected, actual: payload.count)
        }
        self.offset = offset
        self.flags = flags
        self.bytes = try reader.readBytes(Int(size))
    }

    private static func check(offset: UInt32, size: UInt32, flags: UInt32) throws(ProtocolError) {
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard size >= 1, size <= maximumSize, !overflow, end <= maximumSize else {
            throw .invalidConfigAccess(offset: offset, size: size)
        }
        guard flags == frontEndFlags || flags == migrationFlags else {
            throw .invalidConfigFlags(flags)
        }
    }

    /// The number of config bytes, 1...256.
    public var size: UInt32 { UInt32(truncatingIfNeeded: bytes.count) }

    /// The encoded length, 12 + size.
    public var byteCount: Int { Self.headerByteCount + bytes.count }

    /// Whether `other` names the same offset, size and flags (what a GET_CONFIG reply echoes).
    public func hasSameRange(as other: ConfigAccess) -> Bool {
        offset == other.offset && size == other.size && flags == other.flags
    }

    func write(to writer: inout ByteWriter) {
        writer.append(offset)
        writer.append(size)
        writer.append(flags)
        writer.append(contentsOf: bytes)
    }
}
