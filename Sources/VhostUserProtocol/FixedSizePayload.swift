/// A payload with one fixed encoded length, read and written field by field.
///
/// Conforming types parse with `init(from:)` after `init(parsing:)` has checked the length,
/// so each layout is written once for reading and once for writing.
protocol FixedSizePayload {
    /// The encoded length in bytes.
    static var byteCount: Int { get }
    /// A short name for error messages.
    static var payloadName: String { get }
    /// Reads and validates the fields at the reader's position.
    init(from reader: inout ByteReader) throws(ProtocolError)
    /// Appends exactly `byteCount` bytes.
    func write(to writer: inout ByteWriter)
}

extension FixedSizePayload {
    /// Parses a buffer that must be exactly `byteCount` bytes long.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(ProtocolError) -> Self {
        var reader = try ByteReader(bytes, exactly: byteCount, payload: payloadName)
        return try Self(from: &reader)
    }

    /// The encoded bytes.
    var encodedBytes: [UInt8] {
        var writer = ByteWriter(capacity: Self.byteCount)
        write(to: &writer)
        return writer.bytes
    }
}
