import VhostSystem
import VirtioSpec

extension SplitQueue {
    /// The three parts of a split queue as host pointers, validated once: the size is a power of
    /// two, each part is aligned (16/2/4), and each lies entirely inside one memory region.
    ///
    /// Holds the `GuestMemory` it was translated through, so the rings stay mapped while the
    /// layout exists, whatever happens to the table in force.
    public struct Layout {
        public let queueSize: Int
        public let descriptorTable: UnsafeMutableRawPointer
        public let availableRing: UnsafeMutableRawPointer
        public let usedRing: UnsafeMutableRawPointer
        public let memory: GuestMemory
        /// Contiguous views made for parts scattered in the front end's space (behind an IOMMU,
        /// a ring contiguous in IOVA space may lie on pages that are not); kept mapped here.
        public let views: [MemoryMapping]

        /// Validates and translates ring addresses given in the front end's virtual address space
        /// (SET_VRING_ADDR without an IOMMU).
        /// - Throws: `VirtqueueError.invalidQueueSize`, `.ringMisaligned`, `.ringNotInGuestMemory`.
        public static func translate(queueSize: Int, descriptorTable: FrontEndVirtualAddress,
                                     availableRing: FrontEndVirtualAddress, usedRing: FrontEndVirtualAddress,
                                     memory: GuestMemory) throws(VirtqueueError) -> Layout {
            try translate(queueSize: queueSize, addresses: (descriptorTable, availableRing, usedRing), memory: memory) {
                memory.pointer($0, length: $1)
            }
        }

        /// Validates and translates ring addresses given as guest-physical addresses.
        /// - Throws: `VirtqueueError.invalidQueueSize`, `.ringMisaligned`, `.ringNotInGuestMemory`.
        public static func translate(queueSize: Int, descriptorTable: GuestPhysicalAddress,
                                     availableRing: GuestPhysicalAddress, usedRing: GuestPhysicalAddress,
                                     memory: GuestMemory) throws(VirtqueueError) -> Layout {
            try translate(queueSize: queueSize, addresses: (descriptorTable, availableRing, usedRing), memory: memory) {
                memory.pointer($0, length: $1)
            }
        }

        /// The one place ring addresses are checked, whatever space they are in.
        private static func translate<Address: MemoryAddress>(
            queueSize: Int, addresses: (Address, Address, Address), memory: GuestMemory,
            pointer: (Address, Int) -> UnsafeMutableRawPointer?
        ) throws(VirtqueueError) -> Layout {
            guard SplitRing.isValidQueueSize(queueSize) else { throw .invalidQueueSize(queueSize) }
            let parts: [(VirtqueueError.Ring, Address, Int, Int)] = [
                (.descriptorTable, addresses.0, SplitRing.descriptorTableAlignment,
                 SplitRing.descriptorTableByteCount(queueSize: queueSize)),
                (.availableRing, addresses.1, SplitRing.availableRingAlignment,
                 SplitRing.availableRingByteCount(queueSize: queueSize)),
                (.usedRing, addresses.2, SplitRing.usedRingAlignment,
                 SplitRing.usedRingByteCount(queueSize: queueSize)),
            ]
            var pointers: [UnsafeMutableRawPointer] = []
            for (ring, address, alignment, length) in parts {
                guard address.rawValue % UInt64(alignment) == 0 else {
                    throw .ringMisaligned(ring, address: address.rawValue, alignment: alignment)
                }
                guard let host = pointer(address, length) else {
                    throw .ringNotInGuestMemory(ring, address: address.rawValue, length: length)
                }
                pointers.append(host)
            }
            return try Layout(queueSize: queueSize, descriptorTable: pointers[0], availableRing: pointers[1],
                              usedRing: pointers[2], memory: memory)
        }

        /// A layout from host pointers translated elsewhere (for example through an IOTLB).
        ///
        /// The caller guarantees that each pointer starts a range of at least the part's size
        /// (`SplitRing.descriptorTableByteCount` and so on) inside `memory`'s mappings or `views`. This
        /// checks the size and the host alignment, which the ring's atomic index accesses need
        /// (a region whose front-end address and mmap offset disagree modulo 4 could otherwise
        /// turn an aligned ring address into a misaligned host address).
        /// - Throws: `VirtqueueError.invalidQueueSize`, `.ringMisaligned`.
        public init(queueSize: Int, descriptorTable: UnsafeMutableRawPointer, availableRing: UnsafeMutableRawPointer,
                    usedRing: UnsafeMutableRawPointer, memory: GuestMemory, views: [MemoryMapping] = []) throws(VirtqueueError) {
            guard SplitRing.isValidQueueSize(queueSize) else { throw .invalidQueueSize(queueSize) }
            let parts: [(VirtqueueError.Ring, UnsafeMutableRawPointer, Int)] = [
                (.descriptorTable, descriptorTable, SplitRing.descriptorTableAlignment),
                (.availableRing, availableRing, SplitRing.availableRingAlignment),
                (.usedRing, usedRing, SplitRing.usedRingAlignment),
            ]
            for (ring, host, alignment) in parts where UInt(bitPattern: host) % UInt(alignment) != 0 {
                throw .ringMisaligned(ring, address: UInt64(UInt(bitPattern: host)), alignment: alignment)
            }
            self.queueSize = queueSize
            self.descriptorTable = descriptorTable
            self.availableRing = availableRing
            self.usedRing = usedRing
            self.memory = memory
            self.views = views
        }
    }
}
