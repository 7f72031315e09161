/// Why ``IOTLB/update(iova:size:userAddress:permission:)`` refused an UPDATE. Each is the front
/// end's fault; the back end answers the message with a failure and keeps the IOTLB as it was.
public enum IOTLBError: Error, Equatable, Sendable {
    /// The UPDATE maps no bytes (size 0).
    case emptyRange
    /// `iova + size - 1` does not fit in 64 bits.
    case iovaRangeWraps(iova: UInt64, size: UInt64)
    /// `userAddress + size - 1` does not fit in 64 bits.
    case userRangeWraps(userAddress: UInt64, size: UInt64)
    /// The permission allows neither reading nor writing (or has unknown bits).
    case invalidPermission(rawValue: UInt8)
    /// The IOTLB would hold more than its entry limit (the kernel's vhost has the same limit,
    /// `max_iotlb_entries`, 2048 by default, and answers -ENOMEM).
    case entryLimitReached(limit: Int)
}
