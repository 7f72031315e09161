/// An address in the guest's physical address space (`guest_phys_addr` of a vhost-user memory
/// region). Descriptor addresses are in this space when no IOMMU is in use.
public struct GuestPhysicalAddress: MemoryAddress {
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }
}
