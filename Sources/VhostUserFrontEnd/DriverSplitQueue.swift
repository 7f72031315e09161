import VirtioCore
import VirtioSpec

/// The guest driver's side of a split virtqueue, in `GuestRAM`: it builds descriptor chains,
/// makes them available, kicks when needed and collects used elements, as a virtio driver does.
///
/// Besides the well-behaved API it has raw hooks for hostile tests: write any descriptor at
/// any index, put any head in the available ring, set avail->idx to anything, write indirect
/// tables with arbitrary contents.
///
/// Not thread-safe: one thread plays the driver.
public final class DriverSplitQueue {
    public let ram: GuestRAM
    public let queueSize: Int
    /// Whether VIRTIO_F_EVENT_IDX is in use (used_event / avail_event instead of the flags).
    public let eventIndex: Bool
    public let descriptorTable: GuestRAM.Allocation
    public let availableRing: GuestRAM.Allocation
    public let usedRing: GuestRAM.Allocation

    /// The next available-ring index the driver writes (published or not).
    public private(set) var availableIndex: UInt16 = 0
    /// avail->idx as last published.
    public private(set) var publishedAvailableIndex: UInt16 = 0
    /// avail->idx at the previous kick decision.
    private var kickCheckedAvailableIndex: UInt16 = 0
    /// The used index up to which `takeUsed` has collected elements.
    public private(set) var lastSeenUsedIndex: UInt16 = 0
    private var freeDescriptors: [UInt16]
    /// Descriptors used by each in-flight head, returned to the free list by `takeUsed`.
    private var chainDescriptors: [[UInt16]]
    /// A reusable indirect table per head (grown on demand).
    private var indirectTables: [GuestRAM.Allocation?]

    /// Allocates the rings in `ram` (each at its spec alignment; `ringAlignment` can raise it, as
    /// legacy layouts use page alignment) and zeroes them.
    /// - Throws: `GuestDriverError.invalidQueueSize`, `.outOfSpace`.
    public init(ram: GuestRAM, queueSize: Int, eventIndex: Bool = false, ringAlignment: Int = 16) throws(GuestDriverError) {
        guard SplitRing.isValidQueueSize(queueSize) else { throw .invalidQueueSize(queueSize) }
        self.ram = ram
        self.queueSize = queueSize
        self.eventIndex = eventIndex
        descriptorTable = try ram.allocate(size: SplitRing.descriptorTableByteCount(queueSize: queueSize),
                                           alignment: max(ringAlignment, SplitRing.descriptorTableAlignment))
        availableRing = try ram.allocate(size: SplitRing.availableRingByteCount(queueSize: queueSize),
                                         alignment: max(ringAlignment, SplitRing.availableRingAlignment))
        usedRing = try ram.allocate(size: SplitRing.usedRingByteCount(queueSize: queueSize),
                                    alignment: max(ringAlignment, SplitRing.usedRingAlignment))
        for part in [descriptorTable, availableRing, usedRing] {
            part.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: part.size)
        }
        freeDescriptors = (0..<queueSize).reversed().map { UInt16($0) }
        chainDescriptors = Array(repeating: [], count: queueSize)
        indirectTables = Array(repeating: nil, count: queueSize)
    }

    /// The ring addresses as guest-physical addresses.
    public var guestPhysicalAddresses: RingAddresses<GuestPhysicalAddress> {
        RingAddresses(descriptorTable: descriptorTable.guestPhysicalAddress, availableRing: availableRing.guestPhysicalAddress,
                      usedRing: usedRing.guestPhysicalAddress)
    }

    /// The ring addresses in the front end's virtual address space (what SET_VRING_ADDR carries
    /// without an IOMMU).
    public var frontEndVirtualAddresses: RingAddresses<FrontEndVirtualAddress> {
        RingAddresses(descriptorTable: descriptorTable.frontEndVirtualAddress, availableRing: availableRing.frontEndVirtualAddress,
                      usedRing: usedRing.frontEndVirtualAddress)
    }

    /// Free descriptors in the table.
    public var freeDescriptorCount: Int { freeDescriptors.count }

    // MARK: Well-behaved driver

    /// Builds a chain of `readable` then `writable` buffers and puts its head in the available
    /// ring (not yet visible: call `publish()`). With `indirect`, the buffers go into an indirect
    /// table and the chain takes one descriptor. Returns the head index.
    /// - Throws: `GuestDriverError.emptyChain`, `.noFreeDescriptors`, `.outOfSpace`.
    @discardableResult
    public func addChain(readable: [(address: GuestPhysicalAddress, length: UInt32)],
                         writable: [(address: GuestPhysicalAddress, length: UInt32)] = [],
                         indirect: Bool = false) throws(GuestDriverError) -> UInt16 {
        let buffers = readable.map { SplitDescriptor(address: $0.address.rawValue, length: $0.length) }
            + writable.map { SplitDescriptor(address: $0.address.rawValue, length: $0.length, flags: .write) }
        guard !buffers.isEmpty else { throw .emptyChain }
        // Indirect entries are chained by 16-bit `next` fields.
        guard buffers.count <= Int(UInt16.max) else { throw .indexOutOfRange(buffers.count, limit: Int(UInt16.max)) }
        let needed = indirect ? 1 : buffers.count
        guard freeDescriptors.count >= needed else {
            throw .noFreeDescriptors(needed: needed, available: freeDescriptors.count)
        }
        let indices = (0..<needed).map { _ in freeDescriptors.removeLast() }
        let head = indices[0]
        if indirect {
            let table = try indirectTable(for: head, entries: buffers.count)
            for (position, buffer) in buffers.enumerated() {
                var entry = buffer
                if position + 1 < buffers.count {
                    entry.flags.insert(.next)
                    entry.next = UInt16(position + 1)
                }
                entry.store(to: table.pointer + position * SplitDescriptor.byteCount)
            }
            let pointer = SplitDescriptor(address: table.guestPhysicalAddress.rawValue,
                                          length: UInt32(buffers.count * SplitDescriptor.byteCount), flags: .indirect)
            storeDescriptor(pointer, at: Int(head))
        } else {
            for (position, buffer) in buffers.enumerated() {
                var entry = buffer
                if position + 1 < buffers.count {
                    entry.flags.insert(.next)
                    entry.next = indices[position + 1]
                }
                storeDescriptor(entry, at: Int(indices[position]))
            }
        }
        chainDescriptors[Int(head)] = indices
        appendAvailable(head: head)
        return head
    }

    /// Makes every head added since the last call visible to the device (avail->idx).
    public func publish() {
        // Release: the descriptors and ring entries written before become visible to the device
        // no later than the new index.
        RingMemory.storeReleaseUInt16(availableIndex, availableRing.pointer, offset: SplitRing.availableIndexOffset)
        publishedAvailableIndex = availableIndex
    }

    /// Whether the device wants a kick for what was published since the previous decision.
    /// With EVENT_IDX: avail->idx crossed avail_event. Without: used->flags lacks NO_NOTIFY.
    public func needsKick() -> Bool {
        // Full fence: orders our avail->idx store before the read of avail_event / used->flags,
        // pairing with the device's fence in enableNotifications (no lost kick).
        RingMemory.fullFence()
        let old = kickCheckedAvailableIndex
        let new = publishedAvailableIndex
        kickCheckedAvailableIndex = new
        if eventIndex {
            let event = RingMemory.loadUInt16(usedRing.pointer, offset: SplitRing.availableEventOffset(queueSize: queueSize))
            return SplitRing.needsEvent(event: event, new: new, old: old)
        }
        let flags = RingMemory.loadUInt16(usedRing.pointer, offset: SplitRing.usedFlagsOffset)
        return flags & SplitRing.usedFlagNoNotify == 0
    }

    /// Collects the used elements published since the last call and frees their descriptors.
    public func takeUsed() -> [UsedElement] {
        // Acquire: pairs with the device's release store of used->idx, so the elements (and
        // the data written into the buffers) are visible to the loads below.
        let current = RingMemory.loadAcquireUInt16(usedRing.pointer, offset: SplitRing.usedIndexOffset)
        var elements: [UsedElement] = []
        while lastSeenUsedIndex != current {
            let slot = Int(lastSeenUsedIndex & UInt16(queueSize - 1))
            let offset = SplitRing.usedElementOffset(slot: slot)
            let element = UsedElement(id: RingMemory.loadUInt32(usedRing.pointer, offset: offset),
                                      length: RingMemory.loadUInt32(usedRing.pointer, offset: offset + 4))
            elements.append(element)
            if element.id < UInt32(queueSize) {
                freeDescriptors.append(contentsOf: chainDescriptors[Int(element.id)].reversed())
                chainDescriptors[Int(element.id)] = []
            }
            lastSeenUsedIndex &+= 1
        }
        return elements
    }

    /// With EVENT_IDX: asks for an interrupt at the next used element (used_event = the used
    /// index already seen). Without: clears VIRTQ_AVAIL_F_NO_INTERRUPT. Returns true if
    /// elements were used meanwhile (collect them instead of waiting).
    public func enableInterrupts() -> Bool {
        if eventIndex {
            setUsedEvent(lastSeenUsedIndex)
        } else {
            setAvailableFlags(0)
        }
        // Full fence: orders the store above before the re-read of used->idx (no lost interrupt).
        RingMemory.fullFence()
        return RingMemory.loadAcquireUInt16(usedRing.pointer, offset: SplitRing.usedIndexOffset) != lastSeenUsedIndex
    }

    /// Without EVENT_IDX: sets VIRTQ_AVAIL_F_NO_INTERRUPT.
    public func disableInterrupts() {
        if !eventIndex { setAvailableFlags(SplitRing.availableFlagNoInterrupt) }
    }

    // MARK: Ring fields

    /// Writes `used_event` (meaningful with EVENT_IDX).
    public func setUsedEvent(_ value: UInt16) {
        RingMemory.storeUInt16(value, availableRing.pointer, offset: SplitRing.usedEventOffset(queueSize: queueSize))
    }

    /// Writes avail->flags.
    public func setAvailableFlags(_ value: UInt16) {
        RingMemory.storeUInt16(value, availableRing.pointer, offset: SplitRing.availableFlagsOffset)
    }

    /// avail_event as the device last wrote it.
    public var availableEvent: UInt16 {
        RingMemory.loadUInt16(usedRing.pointer, offset: SplitRing.availableEventOffset(queueSize: queueSize))
    }

    /// used->flags as the device last wrote it.
    public var usedFlags: UInt16 {
        RingMemory.loadUInt16(usedRing.pointer, offset: SplitRing.usedFlagsOffset)
    }

    /// used->idx as the device last published it.
    public var usedIndex: UInt16 {
        RingMemory.loadAcquireUInt16(usedRing.pointer, offset: SplitRing.usedIndexOffset)
    }

    /// Moves every ring index to `value` before the device starts, as if `value` chains had been
    /// made available and used already (for tests around the 2^16 wrap). The device must be
    /// started with `nextAvailableIndex: value`.
    public func startIndices(at value: UInt16) {
        availableIndex = value
        publishedAvailableIndex = value
        kickCheckedAvailableIndex = value
        lastSeenUsedIndex = value
        RingMemory.storeUInt16(value, availableRing.pointer, offset: SplitRing.availableIndexOffset)
        RingMemory.storeUInt16(value, usedRing.pointer, offset: SplitRing.usedIndexOffset)
    }

    // MARK: Raw hooks for hostile tests

    /// Writes `descriptor` verbatim at `index` of the descriptor table. Does not touch the free
    /// list: do not mix with `addChain` on the same indices.
    /// - Throws: `GuestDriverError.indexOutOfRange`.
    public func writeDescriptor(_ descriptor: SplitDescriptor, at index: Int) throws(GuestDriverError) {
        guard index >= 0, index < queueSize else { throw .indexOutOfRange(index, limit: queueSize) }
        storeDescriptor(descriptor, at: index)
    }

    /// Puts `head` (any value) in the available ring at the next index; not yet published.
    public func makeAvailable(head: UInt16) {
        appendAvailable(head: head)
    }

    /// Stores `value` into avail->idx (release), whatever the ring holds.
    public func setAvailableIndex(_ value: UInt16) {
        availableIndex = value
        publish()
    }

    /// Allocates room for `entryCount` descriptors in RAM and writes `descriptors` verbatim at its
    /// start (entries past them stay zero). Point an INDIRECT descriptor at the result with any
    /// length you like.
    /// - Throws: `GuestDriverError.outOfSpace`.
    public func writeIndirectTable(_ descriptors: [SplitDescriptor], entryCount: Int? = nil) throws(GuestDriverError) -> GuestRAM.Allocation {
        let entries = max(entryCount ?? descriptors.count, descriptors.count, 1)
        let table = try ram.allocate(size: entries * SplitDescriptor.byteCount, alignment: 16)
        table.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: table.size)
        for (position, descriptor) in descriptors.enumerated() {
            descriptor.store(to: table.pointer + position * SplitDescriptor.byteCount)
        }
        return table
    }

    // MARK: Internals

    private func storeDescriptor(_ descriptor: SplitDescriptor, at index: Int) {
        descriptor.store(to: descriptorTable.pointer + index * SplitDescriptor.byteCount)
    }

    private func appendAvailable(head: UInt16) {
        let slot = Int(availableIndex & UInt16(queueSize - 1))
        RingMemory.storeUInt16(head, availableRing.pointer, offset: SplitRing.availableEntryOffset(slot: slot))
        availableIndex &+= 1
    }

    private func indirectTable(for head: UInt16, entries: Int) throws(GuestDriverError) -> GuestRAM.Allocation {
        let bytes = entries * SplitDescriptor.byteCount
        if let existing = indirectTables[Int(head)], existing.size >= bytes { return existing }
        let table = try ram.allocate(size: bytes, alignment: 16)
        indirectTables[Int(head)] = table
        return table
    }
}
