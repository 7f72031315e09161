import VirtioSpec

/// A back-end → front-end reply on the main socket.
///
/// Every reply is a header with flags exactly 0x5 (version 1 | REPLY; QEMU 7.2 compares for
/// equality, so NEED_REPLY is never echoed), the request code of the message it answers, and a
/// payload of exactly the size that request's reply has.
public enum Reply: Equatable, Hashable, Sendable {
    /// GET_FEATURES: the offered virtio features (u64).
    case features(VirtioFeatures)
    /// GET_PROTOCOL_FEATURES: the offered protocol features (u64).
    case protocolFeatures(ProtocolFeatures)
    /// GET_QUEUE_NUM: the largest number of queues the back end supports (u64).
    case queueCount(UInt64)
    /// GET_MAX_MEM_SLOTS: the most memory regions the back end can map (u64).
    case maximumMemorySlots(UInt64)
    /// GET_STATUS: the virtio device status byte (sent as a u64).
    case status(UInt8)
    /// GET_VRING_BASE: the stopped ring's position, same index as asked.
    case vringBase(VringState)
    /// GET_CONFIG: the same offset, size and flags as the request, with the device's bytes.
    case config(ConfigAccess)
    /// GET_INFLIGHT_FD: the in-flight buffer; its fd comes along when `mmapSize` is not 0.
    case inflight(InflightDescription)
    /// A u64 result, 0 for success: the REPLY_ACK answer to a message sent with NEED_REPLY, and
    /// the always-sent reply of IOTLB_MSG, SET_LOG_BASE, POSTCOPY_END and CHECK_DEVICE_STATE.
    case ack(request: VhostUserRequest, value: UInt64)
}
