import VirtioSpec

// Validation of back-end → front-end replies on the main socket, for a front end.
//
// `ReplyDecoder.decode` checks, and stops at the first failure:
//
//   0. Framing: the header is valid and the payload is exactly `header.size` bytes.
//   1. Flags: exactly 0x5 (version 1 | REPLY), as QEMU 7.2 requires.
//   2. Request: the same code as the message answered.
//   3. Size: exactly the reply size for that request (8 for u64 replies and GET_VRING_BASE,
//      12 + size for GET_CONFIG, 24 for GET_INFLIGHT_FD).
//   4. Parse, with range checks (status fits a byte).
//   5. File descriptors: 1 for GET_INFLIGHT_FD with non-zero mmap_size, otherwise 0.
//   6. Echo: GET_VRING_BASE names the vring asked for; GET_CONFIG repeats offset, size, flags.

/// Turns a reply received by a front end into a validated `Reply`.
public enum ReplyDecoder {
    /// Decodes the reply to `message`.
    ///
    /// Requests with a reply body of their own (`VhostUserRequest.hasReplyBody`) decode to
    /// that body; any other request decodes to `.ack`, which is what a back end sends when the
    /// request carried NEED_REPLY. Call this only when a reply is expected.
    ///
    /// - Throws: `ProtocolError` naming the first rule the reply breaks;
    ///   `.unsupportedReply` for reply bodies this library does not model (crypto sessions,
    ///   postcopy advise, shared objects, device state fd, shared memory config).
    public static func decode(
        header: MessageHeader,
        payload: UnsafeRawBufferPointer,
        fileDescriptorCount: Int,
        answering message: FrontEndMessage
    ) throws(ProtocolError) -> Reply {
        try header.validate()
        guard Int(exactly: header.size) == payload.count else {
            throw .payloadSizeMismatchesHeader(headerSize: header.size, actual: payload.count)
        }
        guard header.flags == .replyFlags else {
            throw .wrongReplyFlags(header.flags.rawValue)
        }
        let request = message.request
        guard header.request == request.rawValue else {
            throw .unexpectedReplyRequest(expected: request.rawValue, actual: header.request)
        }
        let reply = try parse(request: request, payload: payload, answering: message)
        let allowed = reply.fileDescriptorCount
        guard fileDescriptorCount == allowed else {
            throw .wrongFileDescriptorCount(request: request, expected: allowed...allowed, actual: fileDescriptorCount)
        }
        if case .vringBase(let state) = reply, case .getVringBase(let asked) = message,
           state.index != asked.index {
            throw .replyVringIndexMismatch(expected: asked.index, actual: state.index)
        }
        if case .config(let config) = reply, case .getConfig(let asked) = message,
           !config.hasSameRange(as: asked) {
            throw .replyConfigMismatch
        }
        return reply
    }

    private static func parse(
        request: VhostUserRequest, payload: UnsafeRawBufferPointer, answering message: FrontEndMessage
    ) throws(ProtocolError) -> Reply {
        switch message {
        case .getFeatures:
            return .features(VirtioFeatures(rawValue: try readUInt64(request: request, payload)))
        case .getProtocolFeatures:
            return .protocolFeatures(ProtocolFeatures(rawValue: try readUInt64(request: request, payload)))
        case .getQueueNum:
            return .queueCount(try readUInt64(request: request, payload))
        case .getMaxMemSlots:
            return .maximumMemorySlots(try readUInt64(request: request, payload))
        case .getStatus:
            let value = try readUInt64(request: request, payload)
            guard let status = UInt8(exactly: value) else {
                throw .invalidDeviceStatus(value)
            }
            return .status(status)
        case .getVringBase:
            try expectSize(VringState.byteCount, request: request, payload)
            return .vringBase(try VringState(parsing: payload))
        case .getInflightFd:
            try expectSize(InflightDescription.byteCount, request: request, payload)
            return .inflight(try InflightDescription(parsing: payload))
        case .getConfig(let asked):
            // As long as the request asked for: 12 + the request's size.
            try expectSize(asked.byteCount, request: request, payload)
            return .config(try ConfigAccess(parsing: payload))
        case .createCryptoSession, .postcopyAdvise, .getSharedObject, .setDeviceStateFd,
             .getShmemConfig:
            throw .unsupportedReply(request)
        case .setLogBase, .iotlbMsg, .postcopyEnd, .checkDeviceState,
             // No reply body: the reply is the REPLY_ACK u64 to NEED_REPLY.
             .setFeatures, .setOwner, .resetOwner, .setMemTable, .setLogFd, .setVringNum,
             .setVringAddr, .setVringBase, .setVringKick, .setVringCall, .setVringErr,
             .setProtocolFeatures, .setVringEnable, .sendRarp, .netSetMtu, .setBackendReqFd,
             .setVringEndian, .setConfig, .closeCryptoSession, .postcopyListen, .setInflightFd,
             .gpuSetSocket, .resetDevice, .vringKick, .addMemReg, .remMemReg, .setStatus:
            return .ack(request: request, value: try readUInt64(request: request, payload))
        }
    }

    private static func expectSize(_ expected: Int, request: VhostUserRequest, _ payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        guard payload.count == expected else {
            throw .wrongPayloadSize(request: request, expected: expected, actual: payload.count)
        }
    }

    private static func readUInt64(request: VhostUserRequest, _ payload: UnsafeRawBufferPointer) throws(ProtocolError) -> UInt64 {
        try expectSize(8, request: request, payload)
        var reader = try ByteReader(payload, exactly: 8, payload: "u64")
        return try reader.readUInt64()
    }
}
