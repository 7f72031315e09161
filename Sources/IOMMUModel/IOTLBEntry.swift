/// Where an IOTLB entry's IOVA range lands: the front-end (QEMU) virtual address of its first
/// byte, and what the device may do there.
public struct IOTLBEntry: RangeValue, Hashable, Sendable {
    /// The front-end address of the entry's first byte (vhost's `uaddr`).
    public var userAddress: UInt64
    /// What the device may do.
    public var permission: IOMMUPermission

    @inlinable public init(userAddress: UInt64, permission: IOMMUPermission) {
        self.userAddress = userAddress
        self.permission = permission
    }

    /// The entry for the part starting `offset` bytes in: the same permission, the user address
    /// advanced by `offset`. ``IOTLB/update(iova:size:userAddress:permission:)`` refuses user
    /// ranges that wrap, so this never wraps for an entry of an IOTLB.
    @inlinable public func sliced(from offset: UInt64) -> IOTLBEntry {
        IOTLBEntry(userAddress: userAddress &+ offset, permission: permission)
    }
}
