import VirtioSpec

/// A validated front-end → back-end message: one case per `VhostUserRequest`, carrying its
/// parsed payload.
///
/// `MessageDecoder.decode` produces these from bytes; `encoded(needReply:)` turns them back
/// into the bytes QEMU would send. Requests a block back end does not implement (crypto,
/// postcopy, GPU, shared objects, device state, ...) still decode, so a dispatcher can answer
/// each with a specific "unsupported" error.
public enum FrontEndMessage: Equatable, Hashable, Sendable {
    case getFeatures
    /// The virtio features the front end acknowledges (plus bit 30 when it was offered).
    case setFeatures(VirtioFeatures)
    case setOwner
    case resetOwner
    /// The new memory table; one fd per region comes with it.
    case setMemTable(MemoryTableDescription)
    /// The dirty log; its shared-memory fd comes with it.
    case setLogBase(LogDescription)
    /// The log eventfd comes with it.
    case setLogFd
    /// `num` is the queue size.
    case setVringNum(VringState)
    case setVringAddr(VringAddress)
    /// `num` is the next available index (split) or the packed ring's indices and wrap counters.
    case setVringBase(VringState)
    /// `num` is reserved; the reply carries the ring position. Stops the ring.
    case getVringBase(VringState)
    case setVringKick(VringFileIndex)
    case setVringCall(VringFileIndex)
    case setVringErr(VringFileIndex)
    case getProtocolFeatures
    case setProtocolFeatures(ProtocolFeatures)
    case getQueueNum
    /// `num` is 1 (enable) or 0 (disable).
    case setVringEnable(VringState)
    /// The guest's MAC address in the low 6 bytes (native order) of the u64.
    case sendRarp(UInt64)
    case netSetMtu(UInt64)
    /// The back-end channel's socket fd comes with it.
    case setBackendReqFd
    case iotlbMsg(IOTLBMessage)
    /// `num` is 0 (little-endian ring) or 1 (big-endian ring).
    case setVringEndian(VringState)
    case getConfig(ConfigAccess)
    case setConfig(ConfigAccess)
    /// The crypto session payload, kept opaque: its layout differs between QEMU versions and
    /// this library does not implement crypto devices.
    case createCryptoSession([UInt8])
    /// The session id.
    case closeCryptoSession(UInt64)
    case postcopyAdvise
    case postcopyListen
    case postcopyEnd
    /// `numQueues` and `queueSize` are what the front end asks for.
    case getInflightFd(InflightDescription)
    /// The in-flight buffer's fd comes with it.
    case setInflightFd(InflightDescription)
    /// The GPU socket fd comes with it.
    case gpuSetSocket
    case resetDevice
    /// In-band kick (INBAND_NOTIFICATIONS).
    case vringKick(VringState)
    case getMaxMemSlots
    /// The region's fd comes with it.
    case addMemReg(SingleMemoryRegion)
    case remMemReg(SingleMemoryRegion)
    /// The virtio device status byte.
    case setStatus(UInt8)
    case getStatus
    case getSharedObject(SharedObjectID)
    /// The state-transfer pipe fd comes with it.
    case setDeviceStateFd(DeviceStateTransfer)
    case checkDeviceState
    case getShmemConfig
}
