/// The split virtqueue's memory format (VIRTIO 1.2 §2.7): sizes, alignments and field offsets
/// of the descriptor table, the available ring and the used ring, shared by the device
/// (`SplitQueue`) and the test driver. Functions taking a queue size expect a valid one
/// (`isValidQueueSize`); with it no product can overflow.
public enum SplitRing {
    /// The largest queue size: the highest power of two that fits in 16 bits (§2.7).
    public static let maximumQueueSize = 32768

    /// Alignments from the table in §2.7.
    public static let descriptorTableAlignment = 16
    public static let availableRingAlignment = 2
    public static let usedRingAlignment = 4

    /// Drivers must not add a chain longer than 2^32 bytes in total (§2.7, "The Virtqueue Descriptor Table").
    public static let maximumChainByteCount: UInt64 = 1 << 32

    /// VIRTQ_AVAIL_F_NO_INTERRUPT: the driver does not want used-buffer notifications.
    public static let availableFlagNoInterrupt: UInt16 = 1
    /// VIRTQ_USED_F_NO_NOTIFY: the device does not want available-buffer notifications.
    public static let usedFlagNoNotify: UInt16 = 1

    /// A queue size is a power of two in 1...32768.
    public static func isValidQueueSize(_ size: Int) -> Bool {
        size >= 1 && size <= maximumQueueSize && size & (size - 1) == 0
    }

    /// `struct virtq_desc`: le64 addr, le32 len, le16 flags, le16 next.
    public static let descriptorByteCount = 16

    /// 16·N bytes.
    public static func descriptorTableByteCount(queueSize: Int) -> Int { descriptorByteCount * queueSize }
    /// 6 + 2·N bytes: flags, idx, ring[N], used_event.
    public static func availableRingByteCount(queueSize: Int) -> Int { 6 + 2 * queueSize }
    /// 6 + 8·N bytes: flags, idx, ring[N] of {id, len}, avail_event.
    public static func usedRingByteCount(queueSize: Int) -> Int { 6 + 8 * queueSize }

    public static let availableFlagsOffset = 0
    public static let availableIndexOffset = 2
    public static func availableEntryOffset(slot: Int) -> Int { 4 + 2 * slot }
    /// `used_event`, after the last ring entry (meaningful with VIRTIO_F_EVENT_IDX).
    public static func usedEventOffset(queueSize: Int) -> Int { 4 + 2 * queueSize }

    public static let usedFlagsOffset = 0
    public static let usedIndexOffset = 2
    /// A used element is `le32 id; le32 len`.
    public static func usedElementOffset(slot: Int) -> Int { 4 + 8 * slot }
    /// `avail_event`, after the last used element (meaningful with VIRTIO_F_EVENT_IDX).
    public static func availableEventOffset(queueSize: Int) -> Int { 4 + 8 * queueSize }

    /// `vring_need_event` (§2.7, "Used Buffer Notification Suppression", and the virtio_ring.h helper): whether moving an index from
    /// `old` to `new` crossed `event`, i.e. `event` lies in [old, new) modulo 2^16. All
    /// arithmetic wraps, as the free-running indices do.
    @inline(__always)
    public static func needsEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
        new &- event &- 1 < new &- old
    }
}
