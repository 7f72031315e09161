/// virtio-blk request types (VIRTIO spec, "Device Operation" of the block device).
public enum BlockRequestType: UInt32, Sendable {
    case read = 0          // VIRTIO_BLK_T_IN
    case write = 1         // VIRTIO_BLK_T_OUT
    case flush = 4         // VIRTIO_BLK_T_FLUSH
    case getIdentifier = 8 // VIRTIO_BLK_T_GET_ID
    case discard = 11      // VIRTIO_BLK_T_DISCARD
    case writeZeroes = 13  // VIRTIO_BLK_T_WRITE_ZEROES
}
