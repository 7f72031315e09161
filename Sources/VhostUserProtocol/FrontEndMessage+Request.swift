extension FrontEndMessage {
    /// The request code of this message.
    public var request: VhostUserRequest {
        switch self {
        case .getFeatures: .getFeatures
        case .setFeatures: .setFeatures
        case .setOwner: .setOwner
        case .resetOwner: .resetOwner
        case .setMemTable: .setMemTable
        case .setLogBase: .setLogBase
        case .setLogFd: .setLogFd
        case .setVringNum: .setVringNum
        case .setVringAddr: .setVringAddr
        case .setVringBase: .setVringBase
        case .getVringBase: .getVringBase
        case .setVringKick: .setVringKick
        case .setVringCall: .setVringCall
        case .setVringErr: .setVringErr
        case .getProtocolFeatures: .getProtocolFeatures
        case .setProtocolFeatures: .setProtocolFeatures
        case .getQueueNum: .getQueueNum
        case .setVringEnable: .setVringEnable
        case .sendRarp: .sendRarp
        case .netSetMtu: .netSetMtu
        case .setBackendReqFd: .setBackendReqFd
        case .iotlbMsg: .iotlbMsg
        case .setVringEndian: .setVringEndian
        case .getConfig: .getConfig
        case .setConfig: .setConfig
        case .createCryptoSession: .createCryptoSession
        case .closeCryptoSession: .closeCryptoSession
        case .postcopyAdvise: .postcopyAdvise
        case .postcopyListen: .postcopyListen
        case .postcopyEnd: .postcopyEnd
        case .getInflightFd: .getInflightFd
        case .setInflightFd: .setInflightFd
        case .gpuSetSocket: .gpuSetSocket
        case .resetDevice: .resetDevice
        case .vringKick: .vringKick
        case .getMaxMemSlots: .getMaxMemSlots
        case .addMemReg: .addMemReg
        case .remMemReg: .remMemReg
        case .setStatus: .setStatus
        case .getStatus: .getStatus
        case .getSharedObject: .getSharedObject
        case .setDeviceStateFd: .setDeviceStateFd
        case .checkDeviceState: .checkDeviceState
        case .getShmemConfig: .getShmemConfig
        }
    }

    /// The vring index the message is about, for the requests that address one vring.
    public var vringIndex: UInt32? {
        switch self {
        case .setVringNum(let state), .setVringBase(let state), .getVringBase(let state),
             .setVringEnable(let state), .setVringEndian(let state), .vringKick(let state):
            state.index
        case .setVringAddr(let address):
            address.index
        case .setVringKick(let file), .setVringCall(let file), .setVringErr(let file):
            file.index
        case .getFeatures, .setFeatures, .setOwner, .resetOwner, .setMemTable, .setLogBase,
             .setLogFd, .getProtocolFeatures, .setProtocolFeatures, .getQueueNum, .sendRarp,
             .netSetMtu, .setBackendReqFd, .iotlbMsg, .getConfig, .setConfig,
             .createCryptoSession, .closeCryptoSession, .postcopyAdvise, .postcopyListen,
             .postcopyEnd, .getInflightFd, .setInflightFd, .gpuSetSocket, .resetDevice,
             .getMaxMemSlots, .addMemReg, .remMemReg, .setStatus, .getStatus,
             .getSharedObject, .setDeviceStateFd, .checkDeviceState, .getShmemConfig:
            nil
        }
    }
}
