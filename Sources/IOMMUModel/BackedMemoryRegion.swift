/// A region of the memory table as plain values: `size` bytes of front-end address space at
/// `userAddress`, backed by `backing` from `fileOffset` on (vhost-user's `userspace_addr`,
/// `memory_size`, the region's fd and `mmap_offset`).
public struct BackedMemoryRegion: Equatable, Sendable {
    public var userAddress: UInt64
    public var size: UInt64
    public var backing: BackingID
    public var fileOffset: UInt64

    public init(userAddress: UInt64, size: UInt64, backing: BackingID, fileOffset: UInt64) {
        self.userAddress = userAddress
        self.size = size
        self.backing = backing
        self.fileOffset = fileOffset
    }
}
