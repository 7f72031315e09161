extension BlockRequestFuzz {
    /// A request's buffers placed in guest memory and offered on the ring, the way a driver
    /// would: disjoint buffers in the data area (region 0 on into regions 1 and 2, across the
    /// boundaries, then region 3), readable ones holding the request's bytes, writable ones preset to
    /// `sentinel`; a direct chain, or one INDIRECT descriptor and a table; and the head in the
    /// available ring. The ring is always valid: the fuzzed part is what is inside the buffers.
    struct PlacedChain {
        /// Writable bytes hold this until the device writes them.
        static let sentinel: UInt8 = 0xEE
        /// Zero-length descriptors may point anywhere; these point outside guest memory.
        static let wildAddress: UInt64 = 0xDEAD_0000_0000

        /// Readable, then writable descriptors: guest-physical address and length.
        private(set) var readable: [(address: UInt64, length: Int)] = []
        private(set) var writable: [(address: UInt64, length: Int)] = []

        /// Places `request`'s buffers and writes them; nil when they do not fit in guest memory.
        init?(placing request: Request, in guest: FuzzGuestMemory) {
            var allocator = Allocator(cursor: Rig.dataStart + UInt64(request.placementStart), gap: UInt64(request.placementGap))
            var consumed = 0
            for (index, length) in request.readablePieces.enumerated() {
                guard let address = allocator.allocate(length) else { return nil }
                let written = request.readable.withUnsafeBytes { stream in
                    guest.write(UnsafeRawBufferPointer(rebasing: stream[consumed..<(consumed + length)]), at: address)
                }
                guard written else { return nil }
                consumed += length
                readable.append((address, length))
                if index == 0 && request.zeroLengthExtras { readable.append((Self.wildAddress, 0)) }
            }
            for (index, length) in request.writablePieces.enumerated() {
                guard let address = allocator.allocate(length), let ranges = guest.fileRanges(of: address, length: length) else {
                    return nil
                }
                for range in ranges {
                    UnsafeMutableRawBufferPointer(rebasing: guest.guestBytes[range]).initializeMemory(as: UInt8.self, repeating: Self.sentinel)
                }
                writable.append((address, length))
                if index == 0 && request.zeroLengthExtras { writable.append((Self.wildAddress + 1, 0)) }
            }
        }

        /// Writes the descriptors (from `head` on, or into the indirect table) and makes the chain
        /// available as entry `availableIndex`.
        func offer(head: UInt16, availableIndex: UInt16, indirect: Bool, in guest: FuzzGuestMemory) {
            let buffers = readable.map { ($0.address, $0.length, UInt16(0)) } + writable.map { ($0.address, $0.length, UInt16(2)) }
            let count = UInt16(buffers.count)
            let queueSize = UInt16(Rig.queueSize)
            let tableStart = indirect ? Rig.indirectTable : Rig.descriptorTable
            for (position, (address, length, direction)) in buffers.enumerated() {
                let index = indirect ? UInt16(position) : (head + UInt16(position)) % queueSize
                let next = indirect ? index + 1 : (index + 1) % queueSize
                let isLast = position + 1 == buffers.count
                Self.storeDescriptor(address: address, length: UInt32(length), flags: direction | (isLast ? 0 : 1),
                                     next: isLast ? 0 : next, at: tableStart + 16 * UInt64(index), in: guest)
            }
            if indirect {
                Self.storeDescriptor(address: Rig.indirectTable, length: 16 * UInt32(count), flags: 4, next: 0,
                                     at: Rig.descriptorTable + 16 * UInt64(head), in: guest)
            }
            guest.store(head, at: Rig.availableRing + 4 + 2 * UInt64(availableIndex % queueSize))
            guest.store(availableIndex &+ 1, at: Rig.availableRing + 2)
        }

        /// The file ranges of `count` writable bytes starting at byte `start` of the writable side.
        func writableFileRanges(from start: Int, count: Int, in guest: FuzzGuestMemory) -> [Range<Int>] {
            var ranges: [Range<Int>] = []
            var position = 0
            for buffer in writable {
                let overlapStart = max(start, position)
                let overlapEnd = min(start + count, position + buffer.length)
                if overlapStart < overlapEnd {
                    let address = buffer.address + UInt64(overlapStart - position)
                    ranges += guest.fileRanges(of: address, length: overlapEnd - overlapStart) ?? []
                }
                position += buffer.length
            }
            return ranges
        }

        private static func storeDescriptor(address: UInt64, length: UInt32, flags: UInt16, next: UInt16, at entry: UInt64,
                                            in guest: FuzzGuestMemory) {
            guest.store(address, at: entry)
            guest.store(length, at: entry + 8)
            guest.store(flags, at: entry + 12)
            guest.store(next, at: entry + 14)
        }

        /// Hands out disjoint buffers: region 0 on into regions 1 and 2, then region 3.
        private struct Allocator {
            var cursor: UInt64
            let gap: UInt64

            mutating func allocate(_ length: Int) -> UInt64? {
                let lowEnd = FuzzGuestMemory.lowRunEnd
                guard let high = FuzzGuestMemory.placements.last else { return nil }
                var start = cursor + gap
                if start >= lowEnd || UInt64(length) > lowEnd - start {
                    if start < high.guestPhysicalStart { start = high.guestPhysicalStart + gap }
                    guard start <= high.guestPhysicalEnd, UInt64(length) <= high.guestPhysicalEnd - start else { return nil }
                }
                cursor = start + UInt64(length)
                return start
            }
        }
    }
}
