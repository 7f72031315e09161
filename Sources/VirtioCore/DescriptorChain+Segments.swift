extension DescriptorChain {
    /// A view of one side's segments in the queue's segment buffer. Allocates nothing.
    public struct Segments: RandomAccessCollection {
        let storage: SegmentStorage
        let generation: UInt64
        let offset: Int
        public let count: Int

        public var startIndex: Int { 0 }
        public var endIndex: Int { count }

        public subscript(position: Int) -> BufferSegment {
            // Both are our own bugs, never the guest's: a chain used after the next pop, or an
            // index outside the view.
            precondition(storage.generation == generation, "DescriptorChain used after the next popAvailable")
            precondition(position >= 0 && position < count, "segment index out of range")
            // SAFETY: offset + position < offset + count <= segments the walk wrote this generation.
            return storage.base[offset + position]
        }
    }
}
