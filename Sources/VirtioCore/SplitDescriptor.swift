import VirtioSpec

/// A split-ring descriptor (VIRTIO 1.2 §2.7, `struct virtq_desc`), as a value copied out of
/// shared memory. The walk validates the copy, never the shared bytes, so the guest cannot change
/// a field between the check and the use.
public struct SplitDescriptor: Equatable, Sendable {
    /// `virtq_desc.flags`. Unknown bits are kept and ignored.
    public struct Flags: OptionSet, Equatable, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// VIRTQ_DESC_F_NEXT: the chain continues at `next`.
        public static let next = Flags(rawValue: 1)
        /// VIRTQ_DESC_F_WRITE: the buffer is device-writable (otherwise device-readable).
        public static let write = Flags(rawValue: 2)
        /// VIRTQ_DESC_F_INDIRECT: the buffer is a table of descriptors.
        public static let indirect = Flags(rawValue: 4)
    }

    /// Size of one descriptor in the table, in bytes.
    public static let byteCount = SplitRing.descriptorByteCount

    /// `le64 addr`: guest-physical (or IOVA) address of the buffer.
    public var address: UInt64
    /// `le32 len`.
    public var length: UInt32
    /// `le16 flags`.
    public var flags: Flags
    /// `le16 next`.
    public var next: UInt16

    public init(address: UInt64, length: UInt32, flags: Flags = [], next: UInt16 = 0) {
        self.address = address
        self.length = length
        self.flags = flags
        self.next = next
    }

    /// Copies the 16 bytes at `source` with explicit little-endian loads.
    @inline(__always)
    public init(copyingFrom source: UnsafeRawPointer) {
        address = RingMemory.loadUInt64(source, offset: 0)
        length = RingMemory.loadUInt32(source, offset: 8)
        flags = Flags(rawValue: RingMemory.loadUInt16(source, offset: 12))
        next = RingMemory.loadUInt16(source, offset: 14)
    }

    /// Writes the descriptor's 16 bytes at `destination`, little-endian.
    public func store(to destination: UnsafeMutableRawPointer) {
        RingMemory.storeUInt64(address, destination, offset: 0)
        RingMemory.storeUInt32(length, destination, offset: 8)
        RingMemory.storeUInt16(flags.rawValue, destination, offset: 12)
        RingMemory.storeUInt16(next, destination, offset: 14)
    }
}
