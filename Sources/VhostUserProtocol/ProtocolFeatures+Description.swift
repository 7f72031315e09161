import VirtioSpec

extension ProtocolFeatures: CustomStringConvertible {
    static let names: [(ProtocolFeatures, String)] = [
        (.multiQueue, "MQ"), (.logShmfd, "LOG_SHMFD"), (.rarp, "RARP"), (.replyAck, "REPLY_ACK"),
        (.mtu, "NET_MTU"), (.backendReq, "BACKEND_REQ"), (.crossEndian, "CROSS_ENDIAN"),
        (.cryptoSession, "CRYPTO_SESSION"), (.pagefault, "PAGEFAULT"), (.config, "CONFIG"),
        (.backendSendFd, "BACKEND_SEND_FD"), (.hostNotifier, "HOST_NOTIFIER"),
        (.inflightShmfd, "INFLIGHT_SHMFD"), (.resetDevice, "RESET_DEVICE"),
        (.inbandNotifications, "INBAND_NOTIFICATIONS"), (.configureMemSlots, "CONFIGURE_MEM_SLOTS"),
        (.status, "STATUS"), (.xenMmap, "XEN_MMAP"), (.sharedObject, "SHARED_OBJECT"),
        (.deviceState, "DEVICE_STATE"),
    ]

    /// The names of the set bits, e.g. `[REPLY_ACK, CONFIG]` (unnamed bits in hex).
    public var description: String {
        featureListDescription(rawValue: rawValue, names: Self.names.map { ($0.0.rawValue, $0.1) })
    }
}
