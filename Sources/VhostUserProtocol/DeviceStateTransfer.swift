/// The SET_DEVICE_STATE_FD payload (8 bytes): `u32 direction; u32 phase`, sent with the pipe
/// fd the state travels through (protocol feature DEVICE_STATE, QEMU 8.2+).
public struct DeviceStateTransfer: Equatable, Hashable, Sendable {
    public let direction: DeviceStateDirection
    public let phase: DeviceStatePhase

    /// The encoded length.
    public static let byteCount = 8

    public init(direction: DeviceStateDirection, phase: DeviceStatePhase) {
        self.direction = direction
        self.phase = phase
    }

    /// Parses the 8-byte payload.
    ///
    /// - Throws: `.payloadLengthMismatch`, `.invalidDeviceStateDirection`,
    ///   `.invalidDeviceStatePhase`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension DeviceStateTransfer: FixedSizePayload {
    static let payloadName = "device state transfer"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        let directionValue = try reader.readUInt32()
        let phaseValue = try reader.readUInt32()
        guard let direction = DeviceStateDirection(rawValue: directionValue) else {
            throw .invalidDeviceStateDirection(directionValue)
        }
        guard let phase = DeviceStatePhase(rawValue: phaseValue) else {
            throw .invalidDeviceStatePhase(phaseValue)
        }
        self.direction = direction
        self.phase = phase
    }

    func write(to writer: inout ByteWriter) {
        writer.append(direction.rawValue)
        writer.append(phase.rawValue)
    }
}
