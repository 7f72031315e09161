import VirtioCore
import VirtioSpec

extension DescriptorChainFuzz {
    /// The queue an input describes in its first 11 bytes:
    ///
    /// | byte  | meaning |
    /// |-------|---------|
    /// | 0     | queue size 2^(b mod 9): 1 ... 256 |
    /// | 1     | bit 0 INDIRECT_DESC, bit 1 EVENT_IDX; bits 2–3 the longest chain (default, 1024 as virtio-blk asks, twice the ring, or 1: never below the ring); bit 4 a small segment buffer (byte 10) |
    /// | 2–7   | where the descriptor table, the available ring and the used ring go (see `place`) |
    /// | 8–9   | the next available index (SET_VRING_BASE) |
    /// | 10    | the small segment buffer's capacity, 1 ... 8 |
    struct QueueSetup {
        static let byteCount = 11

        let queueSize: Int
        let features: SplitQueue.Features
        let maximumChainLength: Int?
        let maximumSegments: Int?
        let nextAvailableIndex: UInt16
        let descriptorTable: UInt64
        let availableRing: UInt64
        let usedRing: UInt64

        init(_ input: inout FuzzInput) {
            queueSize = 1 << Int(input.byte() % 9)
            let options = input.byte()
            var features: SplitQueue.Features = []
            if options & 1 != 0 { features.insert(.indirectDescriptors) }
            if options & 2 != 0 { features.insert(.eventIndex) }
            self.features = features
            switch (options >> 2) & 3 {
            case 0: maximumChainLength = nil
            case 1: maximumChainLength = 1024
            case 2: maximumChainLength = 2 * queueSize
            default: maximumChainLength = 1
            }
            let tableSelector = FuzzGuestInteger.next(UInt16.self, from: &input)
            let availableSelector = FuzzGuestInteger.next(UInt16.self, from: &input)
            let usedSelector = FuzzGuestInteger.next(UInt16.self, from: &input)
            nextAvailableIndex = FuzzGuestInteger.next(UInt16.self, from: &input)
            let smallSegmentBuffer = Int(input.byte() % 8) + 1
            maximumSegments = options & 0x10 != 0 ? smallSegmentBuffer : nil
            descriptorTable = Self.place(SplitRing.descriptorTableByteCount(queueSize: queueSize),
                                         alignment: SplitRing.descriptorTableAlignment, selector: tableSelector)
            availableRing = Self.place(SplitRing.availableRingByteCount(queueSize: queueSize),
                                       alignment: SplitRing.availableRingAlignment, selector: availableSelector)
            usedRing = Self.place(SplitRing.usedRingByteCount(queueSize: queueSize),
                                  alignment: SplitRing.usedRingAlignment, selector: usedSelector)
        }

        /// A guest-physical address for a ring part of `byteCount` bytes, aligned and inside one
        /// region: the selector's top two bits pick one of the four regions, the rest the aligned
        /// offset, wrapped to fit. Parts may overlap, as a hostile driver may make them.
        static func place(_ byteCount: Int, alignment: Int, selector: UInt16) -> UInt64 {
            let placements = FuzzGuestMemory.placements
            let region = placements[Int(selector >> 14) % placements.count]
            let slots = (region.size - byteCount) / alignment + 1
            return region.guestPhysicalStart + UInt64((Int(selector & 0x3FFF) % slots) * alignment)
        }
    }
}
