extension ProtocolError: CustomStringConvertible {
    /// A one-line message for logs.
    public var description: String {
        switch self {
        case .wrongHeaderSize(let count):
            "message header must be 12 bytes, got \(count)"
        case .badVersion(let flags):
            "unsupported protocol version \(flags & MessageFlags.versionMask) in flags \(hex(flags)) (expected 1)"
        case .reservedFlagBits(let flags):
            "reserved header flag bits set: \(hex(flags))"
        case .payloadTooLarge(let size, let limit):
            "payload of \(size) bytes exceeds the limit of \(limit)"
        case .payloadSizeMismatchesHeader(let headerSize, let actual):
            "header announces \(headerSize) payload bytes but \(actual) were passed"
        case .replyFlagOnRequest(let flags):
            "request carries the REPLY flag (flags \(hex(flags)))"
        case .unknownRequest(let code):
            "unknown front-end request \(code)"
        case .wrongPayloadSize(let request, let expected, let actual):
            "\(request.specName): payload must be \(expected) bytes, got \(actual)"
        case .payloadLengthMismatch(let payload, let expected, let actual):
            "\(payload): expected \(expected) bytes, got \(actual)"
        case .wrongFileDescriptorCount(let request, let expected, let actual):
            "\(request.specName): expected \(rangeText(expected)) file descriptors, got \(actual)"
        case .queueIndexOutOfRange(let index, let count):
            "vring index \(index) out of range (device has \(count) queues)"
        case .reservedVringFileBits(let value):
            "vring file index \(hex(value)) has reserved bits set (only bits 0-8 are defined)"
        case .invalidVringAddressFlags(let flags):
            "vring address flags \(hex(flags)) has bits other than VHOST_VRING_F_LOG"
        case .invalidQueueSize(let num):
            "invalid queue size \(num) (must be 1...32768, a power of two for split rings)"
        case .invalidVringBase(let num):
            "split vring base \(hex(num)) has reserved bits 16-31 set"
        case .invalidVringEnable(let num):
            "SET_VRING_ENABLE value \(num) is neither 0 nor 1"
        case .invalidVringEndian(let num):
            "SET_VRING_ENDIAN value \(num) is neither 0 (little) nor 1 (big)"
        case .memoryRegionEmpty:
            "memory region has size 0"
        case .memoryRegionOverlap(let kind):
            "memory regions overlap in \(kind) address space"
        case .addressOverflow(let kind, let start, let size):
            "\(kind) range \(hex(start)) + \(hex(size)) overflows 64 bits"
        case .noMemoryRegions:
            "memory table has no regions"
        case .tooManyRegions(let count, let limit):
            "\(count) memory regions exceed the limit of \(limit)"
        case .invalidConfigAccess(let offset, let size):
            "config access of \(size) bytes at offset \(offset) is outside 1...256 bytes of config space"
        case .invalidConfigFlags(let flags):
            "config access flags \(hex(flags)) are neither 0 nor 1"
        case .invalidIOTLBPermission(let value):
            "invalid IOTLB permission \(value) (expected 0...3)"
        case .invalidIOTLBType(let value):
            "invalid IOTLB message type \(value) (expected 1...6)"
        case .unexpectedIOTLBMessageType(let type):
            "IOTLB message type \(type) is not allowed in this direction"
        case .emptyIOTLBUpdate:
            "IOTLB update with size 0"
        case .invalidDeviceStatus(let value):
            "device status \(hex(value)) does not fit in 8 bits"
        case .invalidDeviceStateDirection(let value):
            "device state transfer direction \(value) is neither 0 (save) nor 1 (load)"
        case .invalidDeviceStatePhase(let value):
            "device state transfer phase \(value) is not 0 (stopped)"
        case .unsupportedFeatures(let features):
            "SET_FEATURES acknowledges features that were not offered: \(features)"
        case .unsupportedProtocolFeatures(let features):
            "SET_PROTOCOL_FEATURES acknowledges features that were not offered: \(features)"
        case .featureNotNegotiated(let request, let missing):
            "\(request.specName) requires \(missing)"
        case .wrongReplyFlags(let flags):
            "reply flags must be 0x5, got \(hex(flags))"
        case .unexpectedReplyRequest(let expected, let actual):
            "expected a reply to request \(expected), got request \(actual)"
        case .replyVringIndexMismatch(let expected, let actual):
            "GET_VRING_BASE reply is for vring \(actual), asked for vring \(expected)"
        case .replyConfigMismatch:
            "GET_CONFIG reply offset, size or flags differ from the request"
        case .unsupportedReply(let request):
            "replies to \(request.specName) are not supported"
        case .unknownBackendRequest(let code):
            "unknown back-end request \(code)"
        case .wrongBackendPayloadSize(let request, let expected, let actual):
            "\(request.specName): payload must be \(expected) bytes, got \(actual)"
        case .wrongBackendFileDescriptorCount(let request, let expected, let actual):
            "\(request.specName): expected \(rangeText(expected)) file descriptors, got \(actual)"
        }
    }

    /// Whether the byte stream can no longer be trusted to be in step with message
    /// boundaries (the header itself is bad), so the connection must be closed.
    ///
    /// When this is false the message was framed correctly and only its content is wrong:
    /// the caller may fail this one request (for example with a non-zero REPLY_ACK) and go on
    /// reading, or still choose to close.
    public var isFramingError: Bool {
        switch self {
        case .wrongHeaderSize, .badVersion, .reservedFlagBits, .payloadTooLarge,
             .payloadSizeMismatchesHeader:
            true
        case .replyFlagOnRequest, .unknownRequest, .wrongPayloadSize, .payloadLengthMismatch,
             .wrongFileDescriptorCount, .queueIndexOutOfRange, .reservedVringFileBits,
             .invalidVringAddressFlags, .invalidQueueSize, .invalidVringBase, .invalidVringEnable,
             .invalidVringEndian, .memoryRegionEmpty, .memoryRegionOverlap, .addressOverflow,
             .noMemoryRegions, .tooManyRegions, .invalidConfigAccess, .invalidConfigFlags,
             .invalidIOTLBPermission, .invalidIOTLBType, .unexpectedIOTLBMessageType,
             .emptyIOTLBUpdate, .invalidDeviceStatus, .invalidDeviceStateDirection,
             .invalidDeviceStatePhase, .unsupportedFeatures, .unsupportedProtocolFeatures,
             .featureNotNegotiated, .wrongReplyFlags, .unexpectedReplyRequest,
             .replyVringIndexMismatch, .replyConfigMismatch, .unsupportedReply,
             .unknownBackendRequest, .wrongBackendPayloadSize, .wrongBackendFileDescriptorCount:
            false
        }
    }
}

private func hex<T: BinaryInteger>(_ value: T) -> String {
    "0x" + String(value, radix: 16)
}

private func rangeText(_ range: ClosedRange<Int>) -> String {
    range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)...\(range.upperBound)"
}
