/// Names the file behind a memory region (the memfd the front end passed with the region): the
/// caller chooses the numbers, e.g. the region's slot or the fd.
public struct BackingID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    public var description: String { "backing #\(rawValue)" }
}
