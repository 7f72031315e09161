/// Reads little-endian integers from a byte buffer received from the peer.
///
/// Every read checks bounds and throws instead of trapping, so a length check that was
/// forgotten elsewhere turns into a protocol error, never a crash or an out-of-bounds read.
/// (`UnsafeRawBufferPointer`'s own subscript checks bounds only in debug builds.)
struct ByteReader {
    private let bytes: UnsafeRawBufferPointer
    /// The name of the payload being read, for error messages.
    private let payloadName: String
    private(set) var offset = 0

    /// Starts reading `bytes`, which must be exactly `expectedCount` bytes long.
    init(
        _ bytes: UnsafeRawBufferPointer, exactly expectedCount: Int, payload payloadName: String
    ) throws(ProtocolError) {
        guard bytes.count == expectedCount else {
            throw .payloadLengthMismatch(payload: payloadName, expected: expectedCount, actual: bytes.count)
        }
        self.bytes = bytes
        self.payloadName = payloadName
    }

    /// Starts reading `bytes`, which must be at least `minimumCount` bytes long.
    init(
        _ bytes: UnsafeRawBufferPointer, atLeast minimumCount: Int, payload payloadName: String
    ) throws(ProtocolError) {
        guard bytes.count >= minimumCount else {
            throw .payloadLengthMismatch(payload: payloadName, expected: minimumCount, actual: bytes.count)
        }
        self.bytes = bytes
        self.payloadName = payloadName
    }

    /// Bytes not read yet.
    var remaining: Int { bytes.count - offset }

    /// Reserves `count` bytes at the current offset and returns where they start.
    private mutating func advance(by count: Int) throws(ProtocolError) -> Int {
        guard count >= 0, count <= remaining else {
            // Both terms are small (a length already compared with the buffer, and the
            // offset inside it), but the sum is still checked rather than trusted.
            let (wanted, overflow) = offset.addingReportingOverflow(count)
            throw .payloadLengthMismatch(
                payload: payloadName, expected: overflow ? Int.max : wanted, actual: bytes.count)
        }
        let start = offset
        offset = start + count
        return start
    }

    mutating func readUInt8() throws(ProtocolError) -> UInt8 {
        let start = try advance(by: 1)
        return bytes[start]
    }

    mutating func readUInt16() throws(ProtocolError) -> UInt16 {
        let start = try advance(by: 2)
        return UInt16(bytes[start]) | UInt16(bytes[start + 1]) << 8
    }

    mutating func readUInt32() throws(ProtocolError) -> UInt32 {
        let start = try advance(by: 4)
        var value: UInt32 = 0
        for index in 0..<4 {
            value |= UInt32(bytes[start + index]) << (8 * UInt32(index))
        }
        return value
    }

    mutating func readUInt64() throws(ProtocolError) -> UInt64 {
        let start = try advance(by: 8)
        var value: UInt64 = 0
        for index in 0..<8 {
            value |= UInt64(bytes[start + index]) << (8 * UInt64(index))
        }
        return value
    }

    /// Skips padding the protocol defines as "ignore".
    mutating func skip(_ count: Int) throws(ProtocolError) {
        _ = try advance(by: count)
    }

    /// Copies `count` bytes out of the buffer.
    mutating func readBytes(_ count: Int) throws(ProtocolError) -> [UInt8] {
        let start = try advance(by: count)
        return Array(bytes[start..<(start + count)])
    }
}
