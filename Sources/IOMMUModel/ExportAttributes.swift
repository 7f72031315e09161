/// How an object is exported: its size and the mapping's properties. The same object exported
/// with different attributes gets a different cookie.
public struct ExportAttributes: Hashable, Sendable {
    /// The bytes exported, from the object's start (the cookie's length is this rounded up to
    /// whole pages).
    public var size: UInt64
    /// Whether the mapping must be read-only (PROT_READ only).
    public var readOnly: Bool
    /// The caching hint for the mapping.
    public var caching: CachingHint

    public init(size: UInt64, readOnly: Bool = false, caching: CachingHint = .cached) {
        self.size = size
        self.readOnly = readOnly
        self.caching = caching
    }
}
