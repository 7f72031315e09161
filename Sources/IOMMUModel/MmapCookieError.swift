/// Why an ``MmapCookieTable`` refused; it is unchanged then.
public enum MmapCookieError: Error, Equatable, Sendable {
    /// The page size is not a power of two.
    case invalidPageSize(UInt64)
    /// An export of 0 bytes, or one whose page-rounded length does not fit from its offset.
    case invalidSize(UInt64)
    /// An offset (or a fixed area's end) that is not on a page boundary.
    case unaligned(UInt64)
    /// A fixed area outside the table's window.
    case outsideWindow(ClosedRange<UInt64>)
    /// No free page-aligned run of this many bytes is left in the window.
    case offsetSpaceFull(length: UInt64)
    /// These offsets are taken (by an export, a quarantined export, or a fixed area), or, for a
    /// fixed export, not all inside free fixed areas.
    case offsetsUnavailable(ClosedRange<UInt64>)
    /// The object is already exported with these attributes, under this cookie at another
    /// offset.
    case alreadyExported(MmapCookie)
    /// No live export has this cookie (revoked already, or never from this table).
    case unknownCookie(MmapCookie)
    /// The cookie is not in quarantine (still exported, or its quarantine ended).
    case notQuarantined(MmapCookie)
}
