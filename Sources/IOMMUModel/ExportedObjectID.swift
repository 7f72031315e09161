/// Names an object the back end exports through its mmap-able fd (an in-flight tracking area,
/// a doorbell page, a shared-memory window). The caller chooses the numbers and keeps the
/// memfd behind each; the cookie table only sees the name.
public struct ExportedObjectID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public var description: String { "object #\(rawValue)" }
}
