/// Why a ``TwoStepMapper`` refused; it is unchanged then.
public enum TwoStepMappingError: Error, Equatable, Sendable {
    /// The page size is not a power of two, or the granule size is not a power-of-two multiple
    /// of it holding at most 2^18 pages.
    case invalidGeometry(granuleSize: UInt64, pageSize: UInt64)
    /// A size of 0.
    case emptySize
    /// `start + size - 1` does not fit in 64 bits (IOVA or user range), or rounding a
    /// reservation up to whole granules does not.
    case wrapsAddressSpace(start: UInt64, size: UInt64)
    /// An IOVA, size or user address is not a multiple of the page size.
    case unaligned(UInt64)
    /// No free, granule-aligned run of this many bytes is left in the window.
    case outOfSpace(size: UInt64)
    /// This IOVA of the request is not inside the reservation holding the request's first byte
    /// (or no reservation holds it).
    case notReserved(iova: UInt64)
    /// This page is linked already (link refuses to overwrite; use replace).
    case alreadyLinked(iova: UInt64)
    /// This page is not linked (replace needs a linked page).
    case notLinked(iova: UInt64)
    /// The permission allows neither reading nor writing (or has unknown bits).
    case invalidPermission(rawValue: UInt8)
    /// The reservation was released already (or never came from this mapper).
    case unknownReservation(IOVAReservation)
}
