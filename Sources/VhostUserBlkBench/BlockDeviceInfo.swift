import VirtioCore

/// What the front end learned about the device: its config space and features.
public struct BlockDeviceInfo: Sendable, Equatable, Codable {
    public var capacityBytes: UInt64
    /// The logical block size (VIRTIO_BLK_F_BLK_SIZE), 512 without it.
    public var logicalBlockSize: UInt32
    /// The queue count the device offers (VIRTIO_BLK_F_MQ), 1 without it.
    public var queueCount: Int
    public var readOnly: Bool

    public init(capacityBytes: UInt64, logicalBlockSize: UInt32, queueCount: Int, readOnly: Bool) {
        self.capacityBytes = capacityBytes
        self.logicalBlockSize = logicalBlockSize
        self.queueCount = queueCount
        self.readOnly = readOnly
    }

    /// Reads the fields out of the first 36 bytes of virtio-blk's config space.
    init(config bytes: [UInt8], readOnly: Bool, hasBlockSize: Bool, hasMultiQueue: Bool) throws(BenchError) {
        guard bytes.count >= 36 else { throw .deviceUnsuitable("config space of \(bytes.count) bytes is too short") }
        func field<T: FixedWidthInteger>(_ offset: Int, as type: T.Type) -> T {
            var value: T = 0
            for index in (0..<MemoryLayout<T>.size).reversed() {
                value = value << 8 | T(bytes[offset + index])
            }
            return value
        }
        let sectors = field(0, as: UInt64.self)
        let (capacity, overflow) = sectors.multipliedReportingOverflow(by: 512)
        guard !overflow else { throw .deviceUnsuitable("capacity of \(sectors) sectors overflows") }
        capacityBytes = capacity
        logicalBlockSize = hasBlockSize ? field(20, as: UInt32.self) : 512
        queueCount = hasMultiQueue ? Int(field(34, as: UInt16.self)) : 1
        self.readOnly = readOnly
    }
}
