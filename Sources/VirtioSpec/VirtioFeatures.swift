/// Virtio device feature bits as exchanged with GET_FEATURES / SET_FEATURES.
///
/// Bit numbers are from the VIRTIO specification (block device and reserved feature bits)
/// and, for bits 26 and 30, from vhost (`VHOST_F_LOG_ALL`) and vhost-user
/// (`VHOST_USER_F_PROTOCOL_FEATURES`).
public struct VirtioFeatures: OptionSet, Hashable, Sendable {
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    private init(bit: UInt64) {
        rawValue = 1 << bit
    }

    // MARK: virtio-blk (VIRTIO 1.2 §5.2.3)

    /// `VIRTIO_BLK_F_SIZE_MAX`: `size_max` in config is the largest segment.
    public static let sizeMax = VirtioFeatures(bit: 1)
    /// `VIRTIO_BLK_F_SEG_MAX`: `seg_max` in config is the most segments per request.
    public static let segMax = VirtioFeatures(bit: 2)
    /// `VIRTIO_BLK_F_GEOMETRY`: legacy disk geometry in config.
    public static let geometry = VirtioFeatures(bit: 4)
    /// `VIRTIO_BLK_F_RO`: the device is read-only.
    public static let readOnly = VirtioFeatures(bit: 5)
    /// `VIRTIO_BLK_F_BLK_SIZE`: `blk_size` in config.
    public static let blockSize = VirtioFeatures(bit: 6)
    /// `VIRTIO_BLK_F_FLUSH`: the device supports cache flush.
    public static let flush = VirtioFeatures(bit: 9)
    /// `VIRTIO_BLK_F_TOPOLOGY`: topology fields in config.
    public static let topology = VirtioFeatures(bit: 10)
    /// `VIRTIO_BLK_F_CONFIG_WCE`: writeback mode can be toggled in config.
    public static let configWCE = VirtioFeatures(bit: 11)
    /// `VIRTIO_BLK_F_MQ`: more than one request queue.
    public static let multiQueue = VirtioFeatures(bit: 12)
    /// `VIRTIO_BLK_F_DISCARD`.
    public static let discard = VirtioFeatures(bit: 13)
    /// `VIRTIO_BLK_F_WRITE_ZEROES`.
    public static let writeZeroes = VirtioFeatures(bit: 14)
    /// `VIRTIO_BLK_F_LIFETIME`.
    public static let lifetime = VirtioFeatures(bit: 15)
    /// `VIRTIO_BLK_F_SECURE_ERASE`.
    public static let secureErase = VirtioFeatures(bit: 16)
    /// `VIRTIO_BLK_F_ZONED`.
    public static let zoned = VirtioFeatures(bit: 17)

    // MARK: Generic (VIRTIO 1.2 §6) and vhost

    /// `VIRTIO_F_NOTIFY_ON_EMPTY` (legacy).
    public static let notifyOnEmpty = VirtioFeatures(bit: 24)
    /// `VHOST_F_LOG_ALL`: the front end wants dirty-page logging (migration).
    public static let logAll = VirtioFeatures(bit: 26)
    /// `VIRTIO_F_ANY_LAYOUT` (legacy).
    public static let anyLayout = VirtioFeatures(bit: 27)
    /// `VIRTIO_F_INDIRECT_DESC`.
    public static let indirectDescriptors = VirtioFeatures(bit: 28)
    /// `VIRTIO_F_EVENT_IDX`.
    public static let eventIndex = VirtioFeatures(bit: 29)
    /// `VHOST_USER_F_PROTOCOL_FEATURES`: the back end supports GET/SET_PROTOCOL_FEATURES.
    /// Never visible to the guest.
    public static let protocolFeatures = VirtioFeatures(bit: 30)
    /// `VIRTIO_F_VERSION_1`.
    public static let version1 = VirtioFeatures(bit: 32)
    /// `VIRTIO_F_ACCESS_PLATFORM` (formerly `IOMMU_PLATFORM`): addresses are IOVAs.
    public static let accessPlatform = VirtioFeatures(bit: 33)
    /// `VIRTIO_F_RING_PACKED`.
    public static let ringPacked = VirtioFeatures(bit: 34)
    /// `VIRTIO_F_IN_ORDER`.
    public static let inOrder = VirtioFeatures(bit: 35)
    /// `VIRTIO_F_ORDER_PLATFORM`.
    public static let orderPlatform = VirtioFeatures(bit: 36)
    /// `VIRTIO_F_RING_RESET`.
    public static let ringReset = VirtioFeatures(bit: 40)
}
