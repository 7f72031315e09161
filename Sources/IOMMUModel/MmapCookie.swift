/// A page-aligned offset in the back end's mmap offset space that names one export: what goes
/// to the front end as `mmap_offset` (GET_INFLIGHT_FD), a host-notifier offset, or a
/// shared-memory `fd_offset`.
public struct MmapCookie: Hashable, Sendable, CustomStringConvertible {
    /// The first byte of the export in the offset space (a multiple of the page size).
    public let offset: UInt64
    /// The bytes of the offset space it takes: the export's size rounded up to whole pages.
    public let length: UInt64
    /// Tells this cookie from a later one at the same offset (after a quarantine ended).
    let serial: UInt64

    /// The offsets the cookie covers.
    public var range: ClosedRange<UInt64> { offset...(offset + (length - 1)) }

    public var description: String { "cookie \(offset)+\(length)" }
}
