/// One piece of a translated buffer: `length` bytes at a front-end address.
public struct IOTLBSegment: Equatable, Sendable {
    /// The front-end (QEMU) virtual address of the piece.
    public var userAddress: UInt64
    /// The number of bytes (at least 1).
    public var length: UInt64

    @inlinable public init(userAddress: UInt64, length: UInt64) {
        self.userAddress = userAddress
        self.length = length
    }
}
