import VhostSystem
import VhostUserFrontEnd
import VirtioCore
import VirtioSpec

/// The guest driver's side of one virtqueue, built for a benchmark's data path: every request
/// slot owns fixed descriptors, a 16-byte header, a data buffer and a status byte, all laid
/// out once, so submitting and completing a request allocates nothing and frees nothing.
///
/// Direct layout: slot `s` uses descriptors 3s (header), 3s+1 (data), 3s+2 (status) and its
/// head is 3s. Indirect layout: slot `s` uses descriptor `s`, which points at its own table of
/// those three. A used id that is not the head of an in-flight slot is the back end's fault
/// and is reported, never trusted.
///
/// Not thread-safe: one thread plays the driver of a queue.
final class BenchQueue {
    let index: Int
    let size: Int
    let depth: Int
    let blockSize: Int
    let indirect: Bool
    let eventIndex: Bool
    let kick: EventFD
    let call: EventFD
    /// Keeps the mapping behind every pointer below alive as long as the queue.
    let ram: GuestRAM
    /// Added to every guest-physical address the device is given: the IOVA base behind a
    /// vIOMMU (IOVA = base + guest-physical), 0 without.
    let addressOffset: UInt64

    let descriptorTable: GuestRAM.Allocation
    let availableRing: GuestRAM.Allocation
    let usedRing: GuestRAM.Allocation
    private let headers: GuestRAM.Allocation
    private let statuses: GuestRAM.Allocation
    private let data: GuestRAM.Allocation
    private let indirectTables: GuestRAM.Allocation?

    private var availableIndex: UInt16 = 0
    private var publishedIndex: UInt16 = 0
    private var kickCheckedIndex: UInt16 = 0
    private var lastUsedIndex: UInt16 = 0
    /// Whether each slot's request is with the device.
    private var inFlight: [Bool]
    private(set) var inFlightCount = 0

    /// Bytes of guest RAM one queue needs (with alignment slack).
    static func memoryNeeded(size: Int, depth: Int, blockSize: Int, indirect: Bool) -> Int {
        let rings = SplitRing.descriptorTableByteCount(queueSize: size) + SplitRing.availableRingByteCount(queueSize: size)
            + SplitRing.usedRingByteCount(queueSize: size) + 3 * 4096
        let slots = depth * (16 + 1 + blockSize + (indirect ? 48 : 0)) + 4 * 4096
        return rings + slots
    }

    init(index: Int, ram: GuestRAM, size: Int, depth: Int, blockSize: Int, indirect: Bool, eventIndex: Bool,
         addressOffset: UInt64 = 0) throws(BenchError) {
        self.addressOffset = addressOffset
        self.index = index
        self.size = size
        self.depth = depth
        self.blockSize = blockSize
        self.indirect = indirect
        self.eventIndex = eventIndex
        self.ram = ram
        inFlight = [Bool](repeating: false, count: depth)
        do throws(GuestDriverError) {
            descriptorTable = try ram.allocate(size: SplitRing.descriptorTableByteCount(queueSize: size), alignment: 4096)
            availableRing = try ram.allocate(size: SplitRing.availableRingByteCount(queueSize: size), alignment: 4096)
            usedRing = try ram.allocate(size: SplitRing.usedRingByteCount(queueSize: size), alignment: 4096)
            headers = try ram.allocate(size: 16 * depth, alignment: 16)
            statuses = try ram.allocate(size: depth, alignment: 16)
            indirectTables = indirect ? try ram.allocate(size: 48 * depth, alignment: 16) : nil
            data = try ram.allocate(size: blockSize * depth, alignment: 4096)
        } catch {
            throw .guestSetup(error)
        }
        do throws(SystemError) {
            kick = try EventFD()
            call = try EventFD()
        } catch {
            throw .system(error)
        }
        layOutDescriptors()
    }

    /// Writes every slot's descriptors once; only the data descriptor's WRITE flag changes later.
    private func layOutDescriptors() {
        let header = headers.guestPhysicalAddress.rawValue + addressOffset
        let status = statuses.guestPhysicalAddress.rawValue + addressOffset
        let buffer = data.guestPhysicalAddress.rawValue + addressOffset
        for slot in 0..<depth {
            let chain = [
                SplitDescriptor(address: header + UInt64(16 * slot), length: 16, flags: .next, next: 1),
                SplitDescriptor(address: buffer + UInt64(blockSize * slot), length: UInt32(blockSize), flags: .next, next: 2),
                SplitDescriptor(address: status + UInt64(slot), length: 1, flags: .write, next: 0),
            ]
            if let tables = indirectTables {
                for (offset, descriptor) in chain.enumerated() {
                    descriptor.store(to: tables.pointer + 48 * slot + 16 * offset)
                }
                SplitDescriptor(address: tables.guestPhysicalAddress.rawValue + addressOffset + UInt64(48 * slot), length: 48,
                                flags: .indirect)
                    .store(to: descriptorTable.pointer + 16 * slot)
            } else {
                for (offset, var descriptor) in chain.enumerated() {
                    if offset < 2 { descriptor.next = UInt16(3 * slot + offset + 1) }
                    descriptor.store(to: descriptorTable.pointer + 16 * (3 * slot + offset))
                }
            }
        }
    }

    /// The data buffer of `slot`.
    func buffer(_ slot: Int) -> UnsafeMutableRawPointer { data.pointer + blockSize * slot }

    /// The status byte of `slot` as the device left it.
    func status(_ slot: Int) -> UInt8 { statuses.pointer.load(fromByteOffset: slot, as: UInt8.self) }

    /// Puts `slot`'s request in the available ring (visible after `publish`).
    /// `type` is a read or a write.
    func submit(slot: Int, type: BlockRequestType, sector: UInt64) {
        let header = headers.pointer + 16 * slot
        RingMemory.storeUInt32(type.rawValue, header, offset: 0)
        RingMemory.storeUInt32(0, header, offset: 4)
        RingMemory.storeUInt64(sector, header, offset: 8)
        statuses.pointer.storeBytes(of: 0xFF, toByteOffset: slot, as: UInt8.self)
        let dataFlags: SplitDescriptor.Flags = type == .read ? [.next, .write] : .next  // the device writes a read's data
        let dataDescriptor = indirectTables.map { $0.pointer + 48 * slot + 16 } ?? descriptorTable.pointer + 16 * (3 * slot + 1)
        RingMemory.storeUInt16(dataFlags.rawValue, dataDescriptor, offset: 12)
        let head = UInt16(indirect ? slot : 3 * slot)
        RingMemory.storeUInt16(head, availableRing.pointer, offset: SplitRing.availableEntryOffset(slot: Int(availableIndex) & (size - 1)))
        availableIndex &+= 1
        inFlight[slot] = true
        inFlightCount += 1
    }

    /// Makes what `submit` added visible to the device and kicks if the device asked for it.
    func publishAndKick() {
        guard availableIndex != publishedIndex else { return }
        RingMemory.storeReleaseUInt16(availableIndex, availableRing.pointer, offset: SplitRing.availableIndexOffset)
        publishedIndex = availableIndex
        // Full fence: our index store before the read of avail_event / used->flags, pairing
        // with the device's fence when it re-enables notifications (no lost kick).
        RingMemory.fullFence()
        let old = kickCheckedIndex
        kickCheckedIndex = publishedIndex
        let wanted: Bool
        if eventIndex {
            let event = RingMemory.loadUInt16(usedRing.pointer, offset: SplitRing.availableEventOffset(queueSize: size))
            wanted = SplitRing.needsEvent(event: event, new: publishedIndex, old: old)
        } else {
            wanted = RingMemory.loadUInt16(usedRing.pointer, offset: SplitRing.usedFlagsOffset) & SplitRing.usedFlagNoNotify == 0
        }
        if wanted { try? kick.signal() }
    }

    /// Calls `body(slot, usedLength)` for every request the device completed since the last
    /// call, in ring order, and returns how many there were.
    /// - Throws: `.backEndMisbehaved` for a used index that runs ahead of what is in flight or
    ///   a used id that is not an in-flight head.
    func harvest(_ body: (Int, UInt32) -> Void) throws(BenchError) -> Int {
        // Acquire: pairs with the device's release of used->idx; the elements and the data the
        // device wrote are visible after it.
        let current = RingMemory.loadAcquireUInt16(usedRing.pointer, offset: SplitRing.usedIndexOffset)
        let count = Int(current &- lastUsedIndex)
        guard count <= inFlightCount else {
            throw .backEndMisbehaved(queue: index, "used index moved by \(count) with \(inFlightCount) requests in flight")
        }
        for _ in 0..<count {
            let offset = SplitRing.usedElementOffset(slot: Int(lastUsedIndex) & (size - 1))
            let id = RingMemory.loadUInt32(usedRing.pointer, offset: offset)
            let length = RingMemory.loadUInt32(usedRing.pointer, offset: offset + 4)
            let slot = indirect ? Int(id) : Int(id / 3)
            guard id < UInt32(size), indirect || id % 3 == 0, slot < depth, inFlight[slot] else {
                throw .backEndMisbehaved(queue: index, "used id \(id) is not the head of a request in flight")
            }
            inFlight[slot] = false
            inFlightCount -= 1
            lastUsedIndex &+= 1
            body(slot, length)
        }
        return count
    }

    /// Asks for a call at the next completion; true if completions arrived meanwhile (harvest
    /// instead of sleeping).
    func enableCalls() -> Bool {
        if eventIndex {
            RingMemory.storeUInt16(lastUsedIndex, availableRing.pointer, offset: SplitRing.usedEventOffset(queueSize: size))
        } else {
            RingMemory.storeUInt16(0, availableRing.pointer, offset: SplitRing.availableFlagsOffset)
        }
        // Full fence: the store above before the re-read of used->idx (no lost call).
        RingMemory.fullFence()
        return RingMemory.loadAcquireUInt16(usedRing.pointer, offset: SplitRing.usedIndexOffset) != lastUsedIndex
    }

    /// Asks the device not to call (polling): NO_INTERRUPT, or used_event just behind what
    /// was seen, which the device's used index will not cross while we keep up.
    func disableCalls() {
        if eventIndex {
            RingMemory.storeUInt16(lastUsedIndex &- 1, availableRing.pointer, offset: SplitRing.usedEventOffset(queueSize: size))
        } else {
            RingMemory.storeUInt16(SplitRing.availableFlagNoInterrupt, availableRing.pointer, offset: SplitRing.availableFlagsOffset)
        }
    }
}
