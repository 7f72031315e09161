/// The front-end → back-end message types (`VHOST_USER_*`, vhost-user.rst
/// "Front-end message types"), with their wire codes.
///
/// Codes 41...44 are newer than QEMU 7.2; they are listed so that the decoder can name them
/// and the dispatcher can answer them with a specific "unsupported" error.
public enum VhostUserRequest: UInt32, Sendable, CaseIterable {
    case getFeatures = 1
    case setFeatures = 2
    case setOwner = 3
    case resetOwner = 4
    case setMemTable = 5
    case setLogBase = 6
    case setLogFd = 7
    case setVringNum = 8
    case setVringAddr = 9
    case setVringBase = 10
    case getVringBase = 11
    case setVringKick = 12
    case setVringCall = 13
    case setVringErr = 14
    case getProtocolFeatures = 15
    case setProtocolFeatures = 16
    case getQueueNum = 17
    case setVringEnable = 18
    case sendRarp = 19
    case netSetMtu = 20
    /// Formerly `VHOST_USER_SET_SLAVE_REQ_FD`.
    case setBackendReqFd = 21
    case iotlbMsg = 22
    case setVringEndian = 23
    case getConfig = 24
    case setConfig = 25
    case createCryptoSession = 26
    case closeCryptoSession = 27
    case postcopyAdvise = 28
    case postcopyListen = 29
    case postcopyEnd = 30
    case getInflightFd = 31
    case setInflightFd = 32
    case gpuSetSocket = 33
    case resetDevice = 34
    case vringKick = 35
    case getMaxMemSlots = 36
    case addMemReg = 37
    case remMemReg = 38
    case setStatus = 39
    case getStatus = 40
    case getSharedObject = 41
    case setDeviceStateFd = 42
    case checkDeviceState = 43
    case getShmemConfig = 44
}
