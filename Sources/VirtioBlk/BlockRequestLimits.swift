/// Limits the device advertises and enforces on requests.
public enum BlockRequestLimits {
    /// Segments in one DISCARD or WRITE_ZEROES request (max_discard_seg / max_write_zeroes_seg).
    public static let maximumDiscardSegments: UInt32 = 32
    /// The GET_ID answer is 20 bytes (VIRTIO_BLK_ID_BYTES).
    public static let identifierByteCount = 20
}
