/// An address in the front end's own virtual address space (QEMU's `userspace_addr`). Ring
/// addresses in SET_VRING_ADDR are in this space when no IOMMU is in use.
public struct FrontEndVirtualAddress: MemoryAddress {
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }
}
