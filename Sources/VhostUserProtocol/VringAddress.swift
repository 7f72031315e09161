/// The vring address payload (`struct vhost_vring_addr`) of SET_VRING_ADDR (40 bytes):
/// `u32 index; u32 flags; u64 desc; u64 used; u64 avail; u64 log_guest_addr`.
///
/// The ring addresses are kept raw: they are front-end virtual addresses, or IOVAs when
/// `ACCESS_PLATFORM` was negotiated, and a higher layer decides which. (For packed rings,
/// `availableRing` is the driver event area and `usedRing` the device event area.) The
/// specification's table shows a "size" column; the real struct has no such field.
public struct VringAddress: Equatable, Hashable, Sendable {
    /// The vring (queue) index.
    public let index: UInt32
    /// Only `VHOST_VRING_F_LOG` is defined; other bits are rejected.
    public let flags: VringAddressFlags
    /// Address of the descriptor table.
    public let descriptorTable: UInt64
    /// Address of the used ring.
    public let usedRing: UInt64
    /// Address of the available ring.
    public let availableRing: UInt64
    /// Guest physical address of the used ring, for dirty logging when `flags` has `.log`.
    public let logGuestAddress: UInt64

    /// The encoded length.
    public static let byteCount = 40

    /// Creates a vring address.
    ///
    /// - Throws: `.invalidVringAddressFlags` if `flags` has bits other than `.log`.
    public init(
        index: UInt32, flags: VringAddressFlags, descriptorTable: UInt64, usedRing: UInt64,
        availableRing: UInt64, logGuestAddress: UInt64
    ) throws(ProtocolError) {
        guard VringAddressFlags.defined.isSuperset(of: flags) else {
            throw .invalidVringAddressFlags(flags.rawValue)
        }
        self.index = index
        self.flags = flags
        self.descriptorTable = descriptorTable
        self.usedRing = usedRing
        self.availableRing = availableRing
        self.logGuestAddress = logGuestAddress
    }

    /// Parses the 40-byte payload.
    ///
    /// - Throws: `.payloadLengthMismatch`, `.invalidVringAddressFlags`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension VringAddress: FixedSizePayload {
    static let payloadName = "vring address"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        let index = try reader.readUInt32()
        let flags = VringAddressFlags(rawValue: try reader.readUInt32())
        let descriptorTable = try reader.readUInt64()
        let usedRing = try reader.readUInt64()
        let availableRing = try reader.readUInt64()
        let logGuestAddress = try reader.readUInt64()
        try self.init(
            index: index, flags: flags, descriptorTable: descriptorTable, usedRing: usedRing,
            availableRing: availableRing, logGuestAddress: logGuestAddress)
    }

    func write(to writer: inout ByteWriter) {
        writer.append(index)
        writer.append(flags.rawValue)
        writer.append(descriptorTable)
        writer.append(usedRing)
        writer.append(availableRing)
        writer.append(logGuestAddress)
    }
}
