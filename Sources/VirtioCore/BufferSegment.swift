/// A contiguous piece of a guest buffer, translated to host memory: `length` bytes at `pointer`.
///
/// Valid while the `GuestMemory` it was translated through is alive (a `DescriptorChain` keeps it
/// alive). The bytes are shared with the guest, which may change them at any time: copy what you
/// need to trust, never keep a Swift reference into them.
///
/// A segment may be *inaccessible*: a piece of a buffer the device may not touch, in a chain
/// walked only so that the device can fail it (`BestEffortTranslator`). Its pointer is a
/// marker that points nowhere useful; `DescriptorChain`'s accessors never hand it out.
public struct BufferSegment: Equatable {
    public let pointer: UnsafeMutableRawPointer
    /// At least 1.
    public let length: Int

    public init(pointer: UnsafeMutableRawPointer, length: Int) {
        self.pointer = pointer
        self.length = length
    }

    /// The marker of inaccessible segments: one byte of our own, never guest memory.
    // SAFETY (nonisolated): allocated once and never read or written, only compared.
    nonisolated(unsafe) private static let inaccessibleMarker = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)

    /// A piece of `length` bytes the device must not access.
    public static func inaccessible(length: Int) -> BufferSegment {
        BufferSegment(pointer: inaccessibleMarker, length: length)
    }

    /// Whether the segment is guest memory the device may access.
    @inline(__always)
    public var isAccessible: Bool { pointer != Self.inaccessibleMarker }
}
