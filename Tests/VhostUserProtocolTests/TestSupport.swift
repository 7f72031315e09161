import Testing
import VhostUserProtocol
import VirtioSpec

/// A context under which every request is legal: all features offered and negotiated except
/// RING_PACKED (so split-ring rules apply), 256 queues, 8 memory slots.
let permissiveContext = DecodingContext(
    queueCount: 256,
    maximumMemorySlots: 8,
    offeredFeatures: VirtioFeatures(rawValue: .max),
    negotiatedProtocolFeatures: ProtocolFeatures(rawValue: .max),
    protocolFeaturesEnabled: true,
    negotiatedFeatures: [.version1, .accessPlatform],
    offeredProtocolFeatures: ProtocolFeatures(rawValue: .max))

/// Splits `bytes` into a 12-byte header and the payload that follows, as a connection would
/// after two reads, and decodes them.
func decodeMessage(
    _ bytes: [UInt8], fds: Int = 0, context: DecodingContext = permissiveContext
) throws(ProtocolError) -> FrontEndMessage {
    let header = try parseHeader(bytes)
    return try withPayload(bytes) { payload throws(ProtocolError) in
        try MessageDecoder.decode(header: header, payload: payload, fileDescriptorCount: fds, context: context)
    }
}

/// Decodes `bytes` as the reply to `message`.
func decodeReply(_ bytes: [UInt8], fds: Int = 0, answering message: FrontEndMessage) throws(ProtocolError) -> Reply {
    let header = try parseHeader(bytes)
    return try withPayload(bytes) { payload throws(ProtocolError) in
        try ReplyDecoder.decode(header: header, payload: payload, fileDescriptorCount: fds, answering: message)
    }
}

/// Decodes `bytes` as a back-end → front-end message.
func decodeBackendMessage(_ bytes: [UInt8], fds: Int = 0) throws(ProtocolError) -> BackendMessage {
    let header = try parseHeader(bytes)
    return try withPayload(bytes) { payload throws(ProtocolError) in
        try BackendMessageDecoder.decode(header: header, payload: payload, fileDescriptorCount: fds)
    }
}

/// Decodes `bytes` as the front end's ack to a back-end message.
func decodeBackendAck(_ bytes: [UInt8], fds: Int = 0, answering request: BackendRequest) throws(ProtocolError) -> BackendAck {
    let header = try parseHeader(bytes)
    return try withPayload(bytes) { payload throws(ProtocolError) in
        try BackendMessageDecoder.decodeAck(header: header, payload: payload, fileDescriptorCount: fds, answering: request)
    }
}

/// Parses the first 12 bytes (or all of them, if fewer) as a header.
func parseHeader(_ bytes: [UInt8]) throws(ProtocolError) -> MessageHeader {
    let headerBytes = Array(bytes.prefix(MessageHeader.byteCount))
    let result: Result<MessageHeader, ProtocolError> = headerBytes.withUnsafeBytes { raw in
        Result { () throws(ProtocolError) in try MessageHeader(parsing: raw) }
    }
    return try result.get()
}

/// Runs `body` on the bytes after the header.
func withPayload<T>(
    _ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(ProtocolError) -> T
) throws(ProtocolError) -> T {
    let payload = Array(bytes.dropFirst(MessageHeader.byteCount))
    let result: Result<T, ProtocolError> = payload.withUnsafeBytes { raw in
        Result { () throws(ProtocolError) in try body(raw) }
    }
    return try result.get()
}

/// Parses a payload type from a byte array.
func parsePayload<T>(_ bytes: [UInt8], _ parse: (UnsafeRawBufferPointer) throws(ProtocolError) -> T) throws(ProtocolError) -> T {
    let result: Result<T, ProtocolError> = bytes.withUnsafeBytes { raw in
        Result { () throws(ProtocolError) in try parse(raw) }
    }
    return try result.get()
}

/// The error `body` throws, or nil if it succeeds.
func thrownError<T>(_ body: () throws(ProtocolError) -> T) -> ProtocolError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// Little-endian bytes of a u32 / u64, for building test messages from parts.
func le32(_ value: UInt32) -> [UInt8] {
    (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }
}

func le64(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
}

/// A header for `request` with `flags` and a `size` matching `payload`, followed by `payload`.
func message(_ request: UInt32, flags: UInt32 = 0x1, payload: [UInt8] = []) -> [UInt8] {
    le32(request) + le32(flags) + le32(UInt32(payload.count)) + payload
}

/// Unwraps a value that must exist in a test (a construction error is a test bug).
func valid<T>(_ body: () throws(ProtocolError) -> T) -> T {
    do {
        return try body()
    } catch {
        fatalError("test value rejected: \(error)")
    }
}

/// SplitMix64: a small seeded generator, so randomized tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
