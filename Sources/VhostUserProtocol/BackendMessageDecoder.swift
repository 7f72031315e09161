// Validation of the back-end channel, in the same order as MessageDecoder:
//
//   decode:    framing (valid header, payload = header.size, REPLY clear) → known code
//              (1...10) → exact payload size → parse (range checks) → fd count → semantics
//              (IOTLB messages from a back end are MISS or ACCESS_FAIL).
//   decodeAck: framing → flags exactly 0x5 → same request code → 8 bytes → no fds.
//
// There is no feature gating on this channel: the front end that reads it is our own test
// tool, and it only exists once BACKEND_REQ was negotiated.

/// Decodes what travels on the back-end channel: back-end requests (for a front end) and the
/// front end's acks to them (for a back end).
public enum BackendMessageDecoder {
    /// Decodes and validates one back-end → front-end message.
    ///
    /// - Throws: `ProtocolError` naming the first rule the message breaks.
    public static func decode(
        header: MessageHeader,
        payload: UnsafeRawBufferPointer,
        fileDescriptorCount: Int
    ) throws(ProtocolError) -> BackendMessage {
        try header.validate()
        guard Int(exactly: header.size) == payload.count else {
            throw .payloadSizeMismatchesHeader(headerSize: header.size, actual: payload.count)
        }
        guard !header.flags.contains(.reply) else {
            throw .replyFlagOnRequest(flags: header.flags.rawValue)
        }
        guard let request = BackendRequest(rawValue: header.request) else {
            throw .unknownBackendRequest(header.request)
        }
        guard payload.count == request.payloadByteCount else {
            throw .wrongBackendPayloadSize(request: request, expected: request.payloadByteCount, actual: payload.count)
        }
        let message: BackendMessage
        switch request {
        case .iotlbMsg: message = .iotlbMsg(try IOTLBMessage(parsing: payload))
        case .configChangeMsg: message = .configChange
        case .vringHostNotifierMsg: message = .vringHostNotifier(try VringAreaDescription(parsing: payload))
        case .vringCall: message = .vringCall(try VringState(parsing: payload))
        case .vringErr: message = .vringErr(try VringState(parsing: payload))
        case .sharedObjectAdd: message = .sharedObjectAdd(try SharedObjectID(parsing: payload))
        case .sharedObjectRemove: message = .sharedObjectRemove(try SharedObjectID(parsing: payload))
        case .sharedObjectLookup: message = .sharedObjectLookup(try SharedObjectID(parsing: payload))
        case .shmemMap: message = .shmemMap(try SharedMemoryMapping(parsing: payload))
        case .shmemUnmap: message = .shmemUnmap(try SharedMemoryMapping(parsing: payload))
        }
        let expected = message.fileDescriptorCount
        guard fileDescriptorCount == expected else {
            throw .wrongBackendFileDescriptorCount(
                request: request, expected: expected...expected, actual: fileDescriptorCount)
        }
        if case .iotlbMsg(let iotlb) = message {
            switch iotlb.type {
            case .miss, .accessFail:
                break
            case .update, .invalidate, .batchBegin, .batchEnd:
                throw .unexpectedIOTLBMessageType(iotlb.type)
            }
        }
        return message
    }

    /// Decodes the front end's ack to a back-end message sent with NEED_REPLY.
    ///
    /// - Throws: `.wrongReplyFlags`, `.unexpectedReplyRequest`, `.wrongBackendPayloadSize`,
    ///   `.wrongBackendFileDescriptorCount`, or a framing error.
    public static func decodeAck(
        header: MessageHeader,
        payload: UnsafeRawBufferPointer,
        fileDescriptorCount: Int,
        answering request: BackendRequest
    ) throws(ProtocolError) -> BackendAck {
        try header.validate()
        guard Int(exactly: header.size) == payload.count else {
            throw .payloadSizeMismatchesHeader(headerSize: header.size, actual: payload.count)
        }
        guard header.flags == .replyFlags else {
            throw .wrongReplyFlags(header.flags.rawValue)
        }
        guard header.request == request.rawValue else {
            throw .unexpectedReplyRequest(expected: request.rawValue, actual: header.request)
        }
        guard payload.count == BackendAck.payloadByteCount else {
            throw .wrongBackendPayloadSize(
                request: request, expected: BackendAck.payloadByteCount, actual: payload.count)
        }
        guard fileDescriptorCount == 0 else {
            throw .wrongBackendFileDescriptorCount(request: request, expected: 0...0, actual: fileDescriptorCount)
        }
        var reader = try ByteReader(payload, exactly: BackendAck.payloadByteCount, payload: "u64")
        return BackendAck(request: request, value: try reader.readUInt64())
    }
}
