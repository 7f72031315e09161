/// Why an `IOPageTable` refused to map or unmap a range.
///
/// Consequence: the table is left exactly as it was. None of these is an error of the guest's
/// request as a whole: the IOTLB's range store stays authoritative and keeps every mapping,
/// including those the page table cannot mirror (unaligned ones, user addresses beyond the frame
/// field, mappings beyond the addressable width, or more than the table limit allows); the data
/// path finds those by falling back to the range store (`IOPageTableMirror`).
public enum IOPageTableError: Error, Equatable, Sendable {
    /// `size` is zero.
    case emptyRange
    /// `iova`, `size` or `userAddress` is not a multiple of 4 KiB. Only page-aligned mappings can
    /// be mirrored; unaligned IOTLB entries stay in the range store only.
    case misaligned(iova: UInt64, size: UInt64, userAddress: UInt64)
    /// The range's last byte lies at or beyond 2^48 (`IOPageTable.iovaLimit`), or `iova + size`
    /// passes 2^64: a 4-level table of 512 entries per level addresses 48 bits.
    case beyondAddressWidth(iova: UInt64, size: UInt64)
    /// `userAddress + size` passes 2^52: the frame field (bits 12–51) cannot hold it.
    case userAddressBeyondFrameField(userAddress: UInt64, size: UInt64)
    /// The permission is empty: such an entry would not be present.
    case emptyPermission
    /// The change needs `needed` more tables than the pool can still provide (`available`).
    case tableLimitReached(needed: Int, available: Int)
}
