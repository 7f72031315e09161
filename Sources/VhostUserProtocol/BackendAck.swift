/// The front end's u64 answer to a back-end message sent with NEED_REPLY (REPLY_ACK
/// negotiated): 0 for success, anything else for failure.
///
/// Like every reply it carries flags exactly 0x5 and the request code it answers.
public struct BackendAck: Equatable, Hashable, Sendable {
    /// The back-end request answered.
    public let request: BackendRequest
    /// 0 = success.
    public let value: UInt64

    /// The payload length.
    public static let payloadByteCount = 8

    public init(request: BackendRequest, value: UInt64) {
        self.request = request
        self.value = value
    }

    /// Whether the front end reported success.
    public var isSuccess: Bool { value == 0 }

    /// The 20 bytes to send.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: MessageHeader.byteCount + Self.payloadByteCount)
        MessageHeader(request: request.rawValue, flags: .replyFlags, size: UInt32(Self.payloadByteCount))
            .write(to: &writer)
        writer.append(value)
        return writer.bytes
    }
}
