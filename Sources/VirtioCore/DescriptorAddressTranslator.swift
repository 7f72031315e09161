/// Turns the addresses found in descriptors into host memory.
///
/// Without an IOMMU, descriptor addresses are guest-physical and `GuestMemory` itself is the
/// translator. With VIRTIO_F_ACCESS_PLATFORM they are IOVAs, translated through the IOTLB to
/// front-end virtual addresses and then through `GuestMemory`: that translator will conform to
/// this protocol with its own `Address` type, and the descriptor walk stays unchanged.
public protocol DescriptorAddressTranslator {
    /// The address space descriptor addresses are in.
    associatedtype Address: MemoryAddress

    /// The memory every returned pointer points into. A chain keeps it alive while it is used.
    var memory: GuestMemory { get }

    /// Host pointer to `length` contiguous bytes at `address`, or nil (used for indirect tables).
    func pointer(_ address: Address, length: Int) -> UnsafeMutableRawPointer?

    /// Host segments for `length` bytes at `address`, written to the front of `buffer`.
    func segments(_ address: Address, length: Int, into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation

    /// `segments(_:length:into:)` for a buffer the device writes (`deviceWrites`) or reads. A
    /// translator that enforces permissions (an IOTLB) answers `.deferred` when the access is
    /// not allowed or not yet mapped; the default ignores the direction.
    func segments(_ address: Address, length: Int, deviceWrites: Bool,
                  into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation

    /// The segments of an indirect table `pointer` refused, only to tell why (spanning regions,
    /// unmapped, deferred). The default is `segments(deviceWrites: false)`.
    func tableSegments(_ address: Address, length: Int,
                       into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation
}

extension DescriptorAddressTranslator {
    public func segments(_ address: Address, length: Int, deviceWrites: Bool,
                         into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        segments(address, length: length, into: buffer)
    }

    public func tableSegments(_ address: Address, length: Int,
                              into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        segments(address, length: length, deviceWrites: false, into: buffer)
    }
}
