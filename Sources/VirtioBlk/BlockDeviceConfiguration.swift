/// The virtio-blk configuration space (VIRTIO spec "Device configuration layout", struct
/// virtio_blk_config; little-endian, packed). Offsets are the spec's; QEMU 7.2 reads the first
/// 36, 48 or 57 bytes depending on its discard / write-zeroes properties.
public struct BlockDeviceConfiguration: Equatable, Sendable {
    /// Bytes up to and including write_zeroes_may_unmap and its 3 padding bytes.
    public static let byteCount = 60

    public var capacitySectors: UInt64
    public var sizeMax: UInt32
    public var segmentMax: UInt32
    public var blockSize: UInt32
    public var physicalBlockExponent: UInt8
    public var alignmentOffset: UInt8
    public var minimumIOSize: UInt16
    public var optimalIOSize: UInt32
    public var writeback: UInt8
    public var numberOfQueues: UInt16
    public var maximumDiscardSectors: UInt32
    public var maximumDiscardSegments: UInt32
    public var discardSectorAlignment: UInt32
    public var maximumWriteZeroesSectors: UInt32
    public var maximumWriteZeroesSegments: UInt32
    public var writeZeroesMayUnmap: UInt8

    /// Offset of the `writeback` byte, the one field a driver may write (with CONFIG_WCE).
    public static let writebackOffset = 32

    /// The ring size seg_max is made for: the smallest ring a front end sets by default (QEMU
    /// 7.2's and 11.1's vhost-user-blk `queue-size` of 128; libblkio and SeaBIOS use 256, QEMU
    /// 10.0.13 up to 1024). The driver reads seg_max before it knows the ring it will get, and
    /// a request must fit one ring (header + seg_max data descriptors + status,
    /// VIRTIO 1.2 §2.7.5.3.1), so it must fit the smallest.
    public static let segmentMaxRingSize = 128

    /// - Parameter maximumQueueSize: the largest ring the device accepts; seg_max stays within
    ///   it when it is below `segmentMaxRingSize`.
    public init(capacitySectors: UInt64, maximumQueueSize: Int, numberOfQueues: Int, blockSize: UInt32 = 512) {
        self.capacitySectors = capacitySectors
        // One segment may be as large as 1 MiB; a request uses at most ring size - 2 data
        // descriptors (the header and the status byte take the other two).
        sizeMax = 1 << 20
        segmentMax = UInt32(clamping: max(min(maximumQueueSize, Self.segmentMaxRingSize) - 2, 1))
        self.blockSize = blockSize
        physicalBlockExponent = 0
        alignmentOffset = 0
        minimumIOSize = 1
        optimalIOSize = 0
        writeback = 1
        self.numberOfQueues = UInt16(clamping: numberOfQueues)
        // 4 KiB discard granularity matches what hole punching frees on common file systems.
        maximumDiscardSectors = BlockRequestLimits.maximumSectorsPerSegment
        maximumDiscardSegments = BlockRequestLimits.maximumDiscardSegments
        discardSectorAlignment = 8
        maximumWriteZeroesSectors = BlockRequestLimits.maximumSectorsPerSegment
        maximumWriteZeroesSegments = BlockRequestLimits.maximumDiscardSegments
        writeZeroesMayUnmap = 1
    }

    /// The configuration space as the driver reads it.
    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.byteCount)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { raw in
                for (index, byte) in raw.enumerated() { bytes[offset + index] = byte }
            }
        }
        put(capacitySectors, at: 0)
        put(sizeMax, at: 8)
        put(segmentMax, at: 12)
        // geometry (16...19) stays zero: GEOMETRY is not offered.
        put(blockSize, at: 20)
        put(physicalBlockExponent, at: 24)
        put(alignmentOffset, at: 25)
        put(minimumIOSize, at: 26)
        put(optimalIOSize, at: 28)
        put(writeback, at: 32)
        put(numberOfQueues, at: 34)
        put(maximumDiscardSectors, at: 36)
        put(maximumDiscardSegments, at: 40)
        put(discardSectorAlignment, at: 44)
        put(maximumWriteZeroesSectors, at: 48)
        put(maximumWriteZeroesSegments, at: 52)
        put(writeZeroesMayUnmap, at: 56)
        return bytes
    }
}
