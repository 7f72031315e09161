/// An IOTLB message as a vIOMMU sends it to a vhost-user back end (VHOST_USER_IOTLB_MSG,
/// `struct vhost_iotlb_msg`), as a plain value: what ``TwoStepMapper`` produces so a test
/// front end can play a guest with an IOMMU, and what ``IOTLB/apply(_:)`` consumes.
public enum IOTLBMessageToSend: Equatable, Sendable {
    /// VHOST_IOTLB_UPDATE: `size` bytes at `iova` now map to `userAddress` with `permission`.
    case update(iova: UInt64, size: UInt64, userAddress: UInt64, permission: IOMMUPermission)
    /// VHOST_IOTLB_INVALIDATE: `size` bytes at `iova` are no longer mapped.
    case invalidate(iova: UInt64, size: UInt64)
}
