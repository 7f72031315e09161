/// What an mmap at an offset of the back end's fd maps: found by ``MmapCookieTable/lookup(offset:length:)``.
public struct MmapCookieLookup: Equatable, Sendable {
    /// The export the range lies in.
    public let cookie: MmapCookie
    /// The exported object.
    public let object: ExportedObjectID
    /// How it is exported (read-only, caching).
    public let attributes: ExportAttributes
    /// Where the looked-up range starts inside the object.
    public let offsetInObject: UInt64
}
