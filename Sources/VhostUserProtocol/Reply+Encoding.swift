extension Reply {
    /// The request code this reply answers.
    public var request: VhostUserRequest {
        switch self {
        case .features: .getFeatures
        case .protocolFeatures: .getProtocolFeatures
        case .queueCount: .getQueueNum
        case .maximumMemorySlots: .getMaxMemSlots
        case .status: .getStatus
        case .vringBase: .getVringBase
        case .config: .getConfig
        case .inflight: .getInflightFd
        case .ack(let request, _): request
        }
    }

    /// How many file descriptors travel with the reply: 1 for GET_INFLIGHT_FD with a non-zero
    /// `mmapSize` (QEMU reads the fd only then), otherwise 0.
    public var fileDescriptorCount: Int {
        if case .inflight(let inflight) = self, inflight.mmapSize != 0 {
            return 1
        }
        return 0
    }

    /// The payload bytes alone.
    public var payloadBytes: [UInt8] {
        var writer = ByteWriter()
        switch self {
        case .features(let features): writer.append(features.rawValue)
        case .protocolFeatures(let features): writer.append(features.rawValue)
        case .queueCount(let value), .maximumMemorySlots(let value): writer.append(value)
        case .status(let status): writer.append(UInt64(status))
        case .vringBase(let state): state.write(to: &writer)
        case .config(let config): config.write(to: &writer)
        case .inflight(let inflight): inflight.write(to: &writer)
        case .ack(_, let value): writer.append(value)
        }
        return writer.bytes
    }

    /// The bytes to send: header (same request code, flags 0x5, exact size) and payload, and
    /// how many file descriptors go with them.
    public func encoded() -> (bytes: [UInt8], fileDescriptorCount: Int) {
        let payload = payloadBytes
        let header = MessageHeader(
            request: request.rawValue, flags: .replyFlags, size: UInt32(truncatingIfNeeded: payload.count))
        var writer = ByteWriter(capacity: MessageHeader.byteCount + payload.count)
        header.write(to: &writer)
        writer.append(contentsOf: payload)
        return (writer.bytes, fileDescriptorCount)
    }
}
