extension VhostUserRequest {
    /// The payload length rule, from the message table of vhost-user.rst and the sizes QEMU
    /// sends (`hdr.size` in hw/virtio/vhost-user.c).
    var payloadLength: PayloadLengthRule {
        switch self {
        case .getFeatures, .setOwner, .resetOwner, .setLogFd, .getProtocolFeatures, .getQueueNum,
             .setBackendReqFd, .postcopyAdvise, .postcopyListen, .postcopyEnd, .gpuSetSocket,
             .resetDevice, .getMaxMemSlots, .getStatus, .checkDeviceState, .getShmemConfig:
            .fixed(0)
        case .setFeatures, .setProtocolFeatures, .sendRarp, .netSetMtu, .closeCryptoSession,
             .setStatus:
            .fixed(8)
        case .setVringNum, .setVringBase, .getVringBase, .setVringEnable, .setVringEndian,
             .vringKick:
            .fixed(VringState.byteCount)
        case .setVringKick, .setVringCall, .setVringErr:
            .fixed(VringFileIndex.byteCount)
        case .setVringAddr: .fixed(VringAddress.byteCount)
        case .setLogBase: .fixed(LogDescription.byteCount)
        case .iotlbMsg: .fixed(IOTLBMessage.byteCount)
        case .getInflightFd, .setInflightFd: .fixed(InflightDescription.byteCount)
        case .addMemReg, .remMemReg: .fixed(SingleMemoryRegion.byteCount)
        case .getSharedObject: .fixed(SharedObjectID.byteCount)
        case .setDeviceStateFd: .fixed(DeviceStateTransfer.byteCount)
        case .setMemTable: .memoryTable
        case .getConfig, .setConfig: .configAccess
        case .createCryptoSession: .opaque
        }
    }

    /// What must be offered or negotiated before this request is legal, or nil if it is always
    /// legal.
    ///
    /// From vhost-user.rst: each message type names the protocol feature it needs. Two gates
    /// are on virtio features: SET_VRING_ENABLE needs `VHOST_USER_F_PROTOCOL_FEATURES`, and
    /// IOTLB_MSG needs `ACCESS_PLATFORM` negotiated. GET_SHMEM_CONFIG has no gate here because
    /// its protocol feature bit is not settled yet.
    public var gate: FeatureGate? {
        switch self {
        case .getFeatures, .setFeatures, .setOwner, .resetOwner, .setMemTable, .setLogFd,
             .setVringNum, .setVringAddr, .setVringBase, .getVringBase, .setVringKick,
             .setVringCall, .setVringErr, .gpuSetSocket, .getShmemConfig:
            nil
        case .getProtocolFeatures, .setProtocolFeatures, .setVringEnable:
            .protocolFeaturesOffered
        case .getQueueNum: .protocolFeature(.multiQueue)
        case .setLogBase: .protocolFeature(.logShmfd)
        case .sendRarp: .protocolFeature(.rarp)
        case .netSetMtu: .protocolFeature(.mtu)
        case .setBackendReqFd: .protocolFeature(.backendReq)
        case .iotlbMsg: .virtioFeature(.accessPlatform)
        case .setVringEndian: .protocolFeature(.crossEndian)
        case .getConfig, .setConfig: .protocolFeature(.config)
        case .createCryptoSession, .closeCryptoSession: .protocolFeature(.cryptoSession)
        case .postcopyAdvise, .postcopyListen, .postcopyEnd: .protocolFeature(.pagefault)
        case .getInflightFd, .setInflightFd: .protocolFeature(.inflightShmfd)
        case .resetDevice: .protocolFeature(.resetDevice)
        case .vringKick: .protocolFeature(.inbandNotifications)
        case .getMaxMemSlots, .addMemReg, .remMemReg: .protocolFeature(.configureMemSlots)
        case .setStatus, .getStatus: .protocolFeature(.status)
        case .getSharedObject: .protocolFeature(.sharedObject)
        case .setDeviceStateFd, .checkDeviceState: .protocolFeature(.deviceState)
        }
    }

    /// Whether the back end always replies to this request with a body of its own, whatever
    /// NEED_REPLY says. For every other request a reply is a REPLY_ACK u64, sent only when
    /// NEED_REPLY is set and REPLY_ACK negotiated.
    ///
    /// SET_LOG_BASE is here because it is gated on LOG_SHMFD, under which the back end must
    /// reply; IOTLB_MSG because the specification says the back end "has to acknowledge" it.
    public var hasReplyBody: Bool {
        switch self {
        case .getFeatures, .getProtocolFeatures, .getQueueNum, .getVringBase, .getConfig,
             .getInflightFd, .getMaxMemSlots, .getStatus, .setLogBase, .iotlbMsg,
             .createCryptoSession, .postcopyAdvise, .postcopyEnd, .getSharedObject,
             .setDeviceStateFd, .checkDeviceState, .getShmemConfig:
            true
        case .setFeatures, .setOwner, .resetOwner, .setMemTable, .setLogFd, .setVringNum,
             .setVringAddr, .setVringBase, .setVringKick, .setVringCall, .setVringErr,
             .setProtocolFeatures, .setVringEnable, .sendRarp, .netSetMtu, .setBackendReqFd,
             .setVringEndian, .setConfig, .closeCryptoSession, .postcopyListen,
             .setInflightFd, .gpuSetSocket, .resetDevice, .vringKick, .addMemReg, .remMemReg,
             .setStatus:
            false
        }
    }
}
