/// The status byte the device writes last (VIRTIO_BLK_S_*).
public enum BlockRequestStatus: UInt8, Sendable {
    case ok = 0
    case ioError = 1
    case unsupported = 2
}
