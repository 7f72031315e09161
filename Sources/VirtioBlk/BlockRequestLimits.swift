/// Limits the device advertises and enforces on requests.
public enum BlockRequestLimits {
    /// Segments in one DISCARD or WRITE_ZEROES request (max_discard_seg / max_write_zeroes_seg).
    public static let maximumDiscardSegments: UInt32 = 32
    /// Sectors in one DISCARD or WRITE_ZEROES segment (max_discard_sectors /
    /// max_write_zeroes_sectors): 4 GiB - 512, the most a 32-bit byte count describes.
    public static let maximumSectorsPerSegment: UInt32 = UInt32.max >> 9
    /// The GET_ID answer is 20 bytes (VIRTIO_BLK_ID_BYTES).
    public static let identifierByteCount = 20
}
