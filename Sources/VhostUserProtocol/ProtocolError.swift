import VirtioSpec

/// Everything that can be wrong with a vhost-user message, on either side of the socket.
///
/// Each case carries the values needed to say what was wrong in one log line
/// (see `description`). `isFramingError` says whether the byte stream itself can still be
/// trusted.
public enum ProtocolError: Error, Equatable, Sendable {
    // MARK: Header and framing

    /// A header must be exactly `MessageHeader.byteCount` (12) bytes; this many were given.
    case wrongHeaderSize(Int)
    /// The version field (flags bits 0–1) is not 1.
    case badVersion(flags: UInt32)
    /// Flags bits 4–31 are reserved and must be zero.
    case reservedFlagBits(flags: UInt32)
    /// The header announces a payload larger than `MessageHeader.maximumPayloadSize`.
    case payloadTooLarge(size: UInt32, limit: Int)
    /// The caller passed a payload whose length differs from the header's `size` field.
    case payloadSizeMismatchesHeader(headerSize: UInt32, actual: Int)
    /// A message received as a request has the REPLY flag (0x4) set.
    case replyFlagOnRequest(flags: UInt32)

    // MARK: Front-end requests

    /// The request code is not one of the front-end message types (1...44).
    case unknownRequest(UInt32)
    /// The payload length is not the one this request carries. For variable-length payloads
    /// (SET_MEM_TABLE, GET/SET_CONFIG) whose count field could not even be read, `expected` is
    /// the smallest legal length.
    case wrongPayloadSize(request: VhostUserRequest, expected: Int, actual: Int)
    /// A payload type was parsed from a buffer of the wrong length (direct use of
    /// `init(parsing:)`; the decoders check sizes first and report `wrongPayloadSize`).
    case payloadLengthMismatch(payload: String, expected: Int, actual: Int)
    /// The message came with a number of file descriptors this request does not allow.
    case wrongFileDescriptorCount(request: VhostUserRequest, expected: ClosedRange<Int>, actual: Int)
    /// A vring index is not below the number of queues the device has.
    case queueIndexOutOfRange(index: UInt32, count: UInt32)
    /// A vring file-index u64 (SET_VRING_KICK/CALL/ERR, HOST_NOTIFIER) has bits set other than
    /// the index (bits 0–7) and the no-fd flag (bit 8).
    case reservedVringFileBits(UInt64)
    /// SET_VRING_ADDR flags has bits other than bit 0 (VHOST_VRING_F_LOG).
    case invalidVringAddressFlags(UInt32)
    /// SET_VRING_NUM: the queue size is 0, above 32768, or (for split rings) not a power of two.
    case invalidQueueSize(UInt32)
    /// SET_VRING_BASE for a split ring: bits 16–31 of `num` are reserved and must be zero.
    case invalidVringBase(UInt32)
    /// SET_VRING_ENABLE: `num` must be 0 (disable) or 1 (enable).
    case invalidVringEnable(UInt32)
    /// SET_VRING_ENDIAN: `num` must be 0 (little) or 1 (big).
    case invalidVringEndian(UInt32)
    /// A memory region has size 0.
    case memoryRegionEmpty
    /// Two regions of a memory table overlap in the given address space.
    case memoryRegionOverlap(AddressKind)
    /// `start + size` does not fit in 64 bits.
    case addressOverflow(AddressKind, start: UInt64, size: UInt64)
    /// SET_MEM_TABLE with no regions.
    case noMemoryRegions
    /// More memory regions than the payload format (8) or the back end allows.
    case tooManyRegions(count: UInt32, limit: UInt32)
    /// GET/SET_CONFIG: size must be 1...256 and offset + size at most 256.
    case invalidConfigAccess(offset: UInt32, size: UInt32)
    /// GET/SET_CONFIG: flags must be 0 (front end) or 1 (migration).
    case invalidConfigFlags(UInt32)
    /// An IOTLB message permission outside 0...3.
    case invalidIOTLBPermission(UInt8)
    /// An IOTLB message type outside 1...6.
    case invalidIOTLBType(UInt8)
    /// An IOTLB message type not allowed in this direction (the front end sends UPDATE and
    /// INVALIDATE; the back end sends MISS and ACCESS_FAIL).
    case unexpectedIOTLBMessageType(IOTLBMessageType)
    /// An IOTLB UPDATE with size 0.
    case emptyIOTLBUpdate
    /// SET_STATUS with a value that does not fit the 8-bit virtio device status.
    case invalidDeviceStatus(UInt64)
    /// SET_DEVICE_STATE_FD direction other than 0 (save) or 1 (load).
    case invalidDeviceStateDirection(UInt32)
    /// SET_DEVICE_STATE_FD phase other than 0 (stopped).
    case invalidDeviceStatePhase(UInt32)
    /// SET_FEATURES acknowledges virtio features the back end did not offer (these bits).
    case unsupportedFeatures(VirtioFeatures)
    /// SET_PROTOCOL_FEATURES acknowledges protocol features the back end did not offer.
    case unsupportedProtocolFeatures(ProtocolFeatures)
    /// The request is only legal once `missing` was offered or negotiated.
    case featureNotNegotiated(request: VhostUserRequest, missing: FeatureGate)

    // MARK: Replies (front-end side)

    /// A reply's flags must be exactly 0x5 (version 1 | REPLY).
    case wrongReplyFlags(UInt32)
    /// A reply carries a different request code from the message it answers.
    case unexpectedReplyRequest(expected: UInt32, actual: UInt32)
    /// GET_VRING_BASE reply for a different vring than asked for.
    case replyVringIndexMismatch(expected: UInt32, actual: UInt32)
    /// GET_CONFIG reply whose offset, size or flags differ from the request's.
    case replyConfigMismatch
    /// This library does not model the reply body of this request.
    case unsupportedReply(VhostUserRequest)

    // MARK: Back-end → front-end channel

    /// The request code is not one of the back-end message types (1...10).
    case unknownBackendRequest(UInt32)
    /// The payload length is not the one this back-end request carries.
    case wrongBackendPayloadSize(request: BackendRequest, expected: Int, actual: Int)
    /// The number of file descriptors this back-end request does not allow.
    case wrongBackendFileDescriptorCount(request: BackendRequest, expected: ClosedRange<Int>, actual: Int)
}
