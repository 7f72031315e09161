/// What an ``MmapCookieTable`` keeps about one export.
struct ExportRecord: Equatable, Sendable {
    var object: ExportedObjectID
    var attributes: ExportAttributes
    var serial: UInt64
    /// Whether it sits in a fixed area (and gives the offsets back to it when done).
    var isFixed: Bool
}
