/// An I/O virtual address: what ring and descriptor addresses are when VIRTIO_F_ACCESS_PLATFORM
/// is negotiated (a guest with a vIOMMU). Only an IOTLB turns it into a front-end address.
public struct IOVirtualAddress: MemoryAddress {
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }
}
