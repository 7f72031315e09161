extension DescriptorChain {
    /// A view of one side's segments in the queue's segment buffer. Allocates nothing: iterate it
    /// with `for in` (its own iterator) or index it.
    public struct Segments: RandomAccessCollection {
        let storage: SegmentStorage
        let generation: UInt64
        let offset: Int
        public let count: Int

        public var startIndex: Int { 0 }
        public var endIndex: Int { count }

        public subscript(position: Int) -> BufferSegment {
            // Our own bug, never the guest's: an index outside the view.
            precondition(position >= 0 && position < count, "segment index out of range")
            return segment(at: position)
        }

        /// The segment at `position` (0 <= position < count), read straight from the buffer.
        @inline(__always)
        func segment(at position: Int) -> BufferSegment {
            // Our own bug, never the guest's: a chain used after the next popAvailable.
            precondition(storage.generation == generation, "DescriptorChain used after the next popAvailable")
            // SAFETY: offset + position < offset + count <= the segments the walk wrote in this
            // generation (checked just above), all inside the buffer's capacity.
            return storage.base[offset + position]
        }

        public func makeIterator() -> Iterator {
            Iterator(segments: self)
        }

        /// Iterates without going through the generic subscript, so a `for in` loop over the
        /// segments allocates nothing even in unoptimized builds.
        public struct Iterator: IteratorProtocol {
            let segments: Segments
            var position = 0

            public mutating func next() -> BufferSegment? {
                guard position < segments.count else { return nil }
                defer { position += 1 }
                return segments.segment(at: position)
            }
        }
    }
}
