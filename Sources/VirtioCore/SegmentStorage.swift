/// The preallocated segment buffer a queue walks chains into, so the data path allocates nothing
/// per request.
///
/// It holds one chain at a time. `generation` changes whenever a walk starts, which is how a
/// `DescriptorChain` notices it is being used after the next `popAvailable` overwrote it.
final class SegmentStorage {
    let base: UnsafeMutablePointer<BufferSegment>
    let capacity: Int
    var generation: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        base = .allocate(capacity: self.capacity)
    }

    deinit {
        // BufferSegment is trivial: nothing to deinitialize.
        base.deallocate()
    }

    /// The free part of the buffer after the first `used` segments.
    @inline(__always)
    func free(after used: Int) -> UnsafeMutableBufferPointer<BufferSegment> {
        // SAFETY: 0 <= used <= capacity (the walk only advances by counts the translation wrote,
        // which never exceed the free part it was given).
        UnsafeMutableBufferPointer(start: base + used, count: capacity - used)
    }
}
