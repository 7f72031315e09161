/// vhost-user protocol feature bits (`VHOST_USER_PROTOCOL_F_*`), exchanged with
/// GET_PROTOCOL_FEATURES / SET_PROTOCOL_FEATURES once `VirtioFeatures.protocolFeatures`
/// was offered.
///
/// Bit numbers are from vhost-user.rst "Protocol features". QEMU 7.2 knows bits 0–16.
public struct ProtocolFeatures: OptionSet, Hashable, Sendable {
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    private init(bit: UInt64) {
        rawValue = 1 << bit
    }

    /// `MQ`: GET_QUEUE_NUM reports the number of queues.
    public static let multiQueue = ProtocolFeatures(bit: 0)
    /// `LOG_SHMFD`: SET_LOG_BASE passes the dirty log as a shared-memory fd.
    public static let logShmfd = ProtocolFeatures(bit: 1)
    /// `RARP`: SEND_RARP.
    public static let rarp = ProtocolFeatures(bit: 2)
    /// `REPLY_ACK`: NEED_REPLY is honoured on every message.
    public static let replyAck = ProtocolFeatures(bit: 3)
    /// `NET_MTU`: NET_SET_MTU.
    public static let mtu = ProtocolFeatures(bit: 4)
    /// `BACKEND_REQ` (formerly `SLAVE_REQ`): the back-end channel via SET_BACKEND_REQ_FD.
    public static let backendReq = ProtocolFeatures(bit: 5)
    /// `CROSS_ENDIAN`: SET_VRING_ENDIAN.
    public static let crossEndian = ProtocolFeatures(bit: 6)
    /// `CRYPTO_SESSION`: CREATE/CLOSE_CRYPTO_SESSION.
    public static let cryptoSession = ProtocolFeatures(bit: 7)
    /// `PAGEFAULT`: postcopy migration with userfaultfd.
    public static let pagefault = ProtocolFeatures(bit: 8)
    /// `CONFIG`: GET/SET_CONFIG and CONFIG_CHANGE_MSG.
    public static let config = ProtocolFeatures(bit: 9)
    /// `BACKEND_SEND_FD` (formerly `SLAVE_SEND_FD`): the back end may pass fds on its channel.
    public static let backendSendFd = ProtocolFeatures(bit: 10)
    /// `HOST_NOTIFIER`: VRING_HOST_NOTIFIER_MSG.
    public static let hostNotifier = ProtocolFeatures(bit: 11)
    /// `INFLIGHT_SHMFD`: GET/SET_INFLIGHT_FD.
    public static let inflightShmfd = ProtocolFeatures(bit: 12)
    /// `RESET_DEVICE`: RESET_DEVICE.
    public static let resetDevice = ProtocolFeatures(bit: 13)
    /// `INBAND_NOTIFICATIONS`: VRING_KICK and the back end's VRING_CALL/ERR messages.
    public static let inbandNotifications = ProtocolFeatures(bit: 14)
    /// `CONFIGURE_MEM_SLOTS`: GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG.
    public static let configureMemSlots = ProtocolFeatures(bit: 15)
    /// `STATUS`: SET/GET_STATUS.
    public static let status = ProtocolFeatures(bit: 16)
    /// `XEN_MMAP`: memory regions carry Xen mapping flags (QEMU 8.1+).
    public static let xenMmap = ProtocolFeatures(bit: 17)
    /// `SHARED_OBJECT`: dma-buf UUID sharing messages (QEMU 8.2+).
    public static let sharedObject = ProtocolFeatures(bit: 18)
    /// `DEVICE_STATE`: SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE (QEMU 8.2+).
    public static let deviceState = ProtocolFeatures(bit: 19)
}
