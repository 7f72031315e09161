/// A contiguous piece of a guest buffer, translated to host memory: `length` bytes at `pointer`.
///
/// Valid while the `GuestMemory` it was translated through is alive (a `DescriptorChain` keeps it
/// alive). The bytes are shared with the guest, which may change them at any time: copy what you
/// need to trust, never keep a Swift reference into them.
public struct BufferSegment: Equatable {
    public let pointer: UnsafeMutableRawPointer
    /// At least 1.
    public let length: Int

    public init(pointer: UnsafeMutableRawPointer, length: Int) {
        self.pointer = pointer
        self.length = length
    }
}
