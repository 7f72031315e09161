/// A byte of a backing file: which file, and where in it.
public struct BackingLocation: RangeValue, Hashable, Sendable {
    public var backing: BackingID
    public var fileOffset: UInt64

    public init(backing: BackingID, fileOffset: UInt64) {
        self.backing = backing
        self.fileOffset = fileOffset
    }

    /// The same file, `offset` bytes further. ``ReverseTranslator`` refuses regions whose file
    /// range wraps, so this never wraps for one of its regions.
    public func sliced(from offset: UInt64) -> BackingLocation {
        BackingLocation(backing: backing, fileOffset: fileOffset &+ offset)
    }
}
