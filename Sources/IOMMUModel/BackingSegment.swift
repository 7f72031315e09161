/// One piece of a reverse translation: `length` bytes of `backing` at `fileOffset`, what a
/// zero-copy `preadv`/`pwritev` or `splice` on the backing file would use.
public struct BackingSegment: Equatable, Sendable {
    public var backing: BackingID
    public var fileOffset: UInt64
    /// At least 1.
    public var length: UInt64

    public init(backing: BackingID, fileOffset: UInt64, length: UInt64) {
        self.backing = backing
        self.fileOffset = fileOffset
        self.length = length
    }
}
