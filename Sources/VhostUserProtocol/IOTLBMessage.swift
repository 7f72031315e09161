/// The IOTLB payload (`struct vhost_iotlb_msg`, 32 bytes):
/// `u64 iova; u64 size; u64 uaddr; u8 perm; u8 type;` plus 6 bytes of padding.
///
/// Used by the front end's IOTLB_MSG (UPDATE, INVALIDATE) and the back end's
/// BACKEND_IOTLB_MSG (MISS, ACCESS_FAIL). Direction-specific rules (which types, UPDATE
/// ranges) are checked by the decoders, not here.
public struct IOTLBMessage: Equatable, Hashable, Sendable {
    /// I/O virtual address of the range.
    public let iova: UInt64
    /// Length of the range. For INVALIDATE, QEMU sends `addr_mask + 1`, which is 0 when the
    /// whole 64-bit space is meant; it is passed through unchanged.
    public let size: UInt64
    /// The front end's virtual address the range maps to (UPDATE; unused by the other
    /// types); 0 after parsing an INVALIDATE.
    public let userAddress: UInt64
    /// The access the range allows (UPDATE) or the one that failed (MISS, ACCESS_FAIL);
    /// `.none` after parsing an INVALIDATE.
    public let permission: IOTLBPermission
    public let type: IOTLBMessageType

    /// The encoded length.
    public static let byteCount = 32

    public init(
        iova: UInt64, size: UInt64, userAddress: UInt64, permission: IOTLBPermission,
        type: IOTLBMessageType
    ) {
        self.iova = iova
        self.size = size
        self.userAddress = userAddress
        self.permission = permission
        self.type = type
    }

    /// Parses the 32-byte payload; the trailing padding is ignored. An INVALIDATE's `perm`
    /// and `uaddr` bytes are ignored too: QEMU 7.2 leaves them uninitialised
    /// (`vhost_backend_invalidate_device_iotlb` sets only iova, size and type), so a real
    /// QEMU sends stack garbage there, e.g. perm 7.
    ///
    /// - Throws: `.payloadLengthMismatch`, `.invalidIOTLBPermission`, `.invalidIOTLBType`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension IOTLBMessage: FixedSizePayload {
    static let payloadName = "IOTLB message"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        iova = try reader.readUInt64()
        size = try reader.readUInt64()
        let userAddressValue = try reader.readUInt64()
        let permissionValue = try reader.readUInt8()
        let typeValue = try reader.readUInt8()
        try reader.skip(6)  // padding to the struct's 8-byte alignment
        guard let type = IOTLBMessageType(rawValue: typeValue) else {
            throw .invalidIOTLBType(typeValue)
        }
        self.type = type
        if type == .invalidate {
            userAddress = 0
            permission = .none
            return
        }
        guard let permission = IOTLBPermission(rawValue: permissionValue) else {
            throw .invalidIOTLBPermission(permissionValue)
        }
        self.permission = permission
        userAddress = userAddressValue
    }

    func write(to writer: inout ByteWriter) {
        writer.append(iova)
        writer.append(size)
        writer.append(userAddress)
        writer.append(permission.rawValue)
        writer.append(type.rawValue)
        writer.appendZeros(6)
    }
}
