/// An object with the attributes it is exported with: the key under which an
/// ``MmapCookieTable`` finds an existing cookie.
struct ExportKey: Hashable, Sendable {
    var object: ExportedObjectID
    var attributes: ExportAttributes
}
