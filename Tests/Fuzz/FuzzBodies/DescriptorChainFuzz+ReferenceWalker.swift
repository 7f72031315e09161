import VirtioCore

extension DescriptorChainFuzz {
    /// What a pop must give under the split-ring rules (VIRTIO 1.2 §2.7, and the rule table and
    /// decisions in docs/virtqueues.md), worked out apart from `SplitQueue`: it reads the rings and
    /// tables through the guest's view of memory, by guest-physical address, and builds plain
    /// arrays; it shares neither the device's mappings nor its segment buffer nor `RingMemory`.
    struct ReferenceWalker {
        /// A piece of a buffer inside one region, as the device must hand it out.
        struct Segment: Equatable, CustomStringConvertible {
            let address: UInt64
            let length: Int
            let deviceWritable: Bool

            var description: String {
                "\(deviceWritable ? "W" : "R") 0x\(String(address, radix: 16))+\(length)"
            }
        }

        enum Outcome: Equatable {
            case empty
            case chain(head: UInt16, segments: [Segment])
            case broken(VirtqueueError)
        }

        /// Where a byte range lies in guest memory.
        private enum Placement {
            case wraps
            case unmapped
            /// More pieces than there was room for.
            case tooManyPieces
            /// Inside regions that follow each other without a gap: one piece per region.
            case mapped([(address: UInt64, length: Int)])
        }

        static let nextFlag: UInt16 = 1
        static let writeFlag: UInt16 = 2
        static let indirectFlag: UInt16 = 4

        let guest: FuzzGuestMemory
        let queueSize: Int
        let descriptorTable: UInt64
        let availableRing: UInt64
        let indirectNegotiated: Bool
        /// The most buffer descriptors in a chain, and entries in an indirect table.
        let chainLimit: Int
        /// The most segments a chain may be handed out in.
        let segmentLimit: Int

        init(guest: FuzzGuestMemory, setup: QueueSetup) {
            self.guest = guest
            queueSize = setup.queueSize
            descriptorTable = setup.descriptorTable
            availableRing = setup.availableRing
            indirectNegotiated = setup.features.contains(.indirectDescriptors)
            // The ring size, or more when the device allows longer chains, never past 32768.
            chainLimit = max(setup.queueSize, min(setup.maximumChainLength ?? 0, 32768))
            // By default room for every buffer of a longest chain to cross one region boundary.
            segmentLimit = max(setup.maximumSegments ?? 2 * chainLimit, 1)
        }

        /// avail->idx as the guest published it.
        var publishedIndex: UInt16 { ringField(at: availableRing + 2) }

        /// The outcome of popping when `next` is the next available-ring index to serve.
        func pop(next: UInt16) -> Outcome {
            let outstanding = publishedIndex &- next
            if outstanding == 0 { return .empty }
            guard Int(outstanding) <= queueSize else {
                return .broken(.availableIndexJumped(previous: next, current: publishedIndex, queueSize: queueSize))
            }
            let head = ringField(at: availableRing + 4 + 2 * UInt64(Int(next) % queueSize))
            switch walk(from: head) {
            case .success(let segments): return .chain(head: head, segments: segments)
            case .failure(let error): return .broken(error)
            }
        }

        private func ringField(at address: UInt64) -> UInt16 {
            guard let value = guest.load(UInt16.self, at: address) else {
                fatalError("the model reads a ring field outside guest memory at 0x\(String(address, radix: 16))")
            }
            return value
        }

        private func walk(from head: UInt16) -> Result<[Segment], VirtqueueError> {
            var segments: [Segment] = []
            var tableAddress = descriptorTable
            var tableEntries = queueSize
            var inIndirectTable = false
            var position = head
            var buffers = 0
            var totalBytes: UInt64 = 0
            var writableSeen = false
            while true {
                guard Int(position) < tableEntries else {
                    return .failure(inIndirectTable ? .indirectIndexOutOfRange(index: position, tableSize: tableEntries)
                                                    : .descriptorIndexOutOfRange(index: position, queueSize: queueSize))
                }
                let entryAddress = tableAddress + 16 * UInt64(position)
                guard let address = guest.load(UInt64.self, at: entryAddress),
                      let length = guest.load(UInt32.self, at: entryAddress + 8),
                      let flags = guest.load(UInt16.self, at: entryAddress + 12),
                      let next = guest.load(UInt16.self, at: entryAddress + 14) else {
                    fatalError("the model reads a descriptor outside guest memory at 0x\(String(entryAddress, radix: 16))")
                }

                if flags & Self.indirectFlag != 0 {
                    if inIndirectTable { return .failure(.nestedIndirect) }
                    if !indirectNegotiated { return .failure(.indirectNotNegotiated) }
                    if flags & Self.nextFlag != 0 { return .failure(.indirectWithNext) }
                    guard length > 0, length % 16 == 0, Int(length / 16) <= chainLimit else {
                        return .failure(.indirectTableLengthInvalid(length: length))
                    }
                    switch place(address, length: length, room: .max) {
                    case .wraps: return .failure(.addressOverflow(address: address, length: length))
                    case .unmapped, .tooManyPieces: return .failure(.addressNotInGuestMemory(address: address, length: length))
                    case .mapped(let pieces) where pieces.count > 1:
                        return .failure(.indirectTableSpansRegions(address: address, length: length))
                    case .mapped:
                        tableAddress = address
                        tableEntries = Int(length / 16)
                        inIndirectTable = true
                        position = 0
                        continue
                    }
                }

                guard buffers < chainLimit else { return .failure(.chainTooLong(limit: chainLimit)) }
                buffers += 1
                let deviceWritable = flags & Self.writeFlag != 0
                if !deviceWritable && writableSeen { return .failure(.readableAfterWritable) }
                writableSeen = writableSeen || deviceWritable
                // A zero-length buffer is skipped whatever its address.
                if length > 0 {
                    switch place(address, length: length, room: segmentLimit - segments.count) {
                    case .wraps: return .failure(.addressOverflow(address: address, length: length))
                    case .unmapped: return .failure(.addressNotInGuestMemory(address: address, length: length))
                    case .tooManyPieces: return .failure(.tooManySegments(limit: segmentLimit))
                    case .mapped(let pieces):
                        totalBytes += UInt64(length)
                        guard totalBytes <= 1 << 32 else { return .failure(.chainByteCountTooLarge(limit: 1 << 32)) }
                        segments += pieces.map { Segment(address: $0.address, length: $0.length, deviceWritable: deviceWritable) }
                    }
                }
                guard flags & Self.nextFlag != 0 else { return .success(segments) }
                position = next
            }
        }

        /// Where `length` (> 0) bytes at `address` lie, in at most `room` pieces. Like the device
        /// (`GuestMemory.segments`), a range is `.tooManyPieces` as soon as a piece finds no room,
        /// before it is known whether the rest of the range is mapped at all.
        private func place(_ address: UInt64, length: UInt32, room: Int) -> Placement {
            let (end, wrapped) = address.addingReportingOverflow(UInt64(length))
            if wrapped { return .wraps }
            var pieces: [(address: UInt64, length: Int)] = []
            var cursor = address
            for region in FuzzGuestMemory.placements where cursor < end {
                guard cursor >= region.guestPhysicalStart, cursor < region.guestPhysicalEnd else { continue }
                guard pieces.count < room else { return .tooManyPieces }
                let pieceEnd = min(end, region.guestPhysicalEnd)
                pieces.append((cursor, Int(pieceEnd - cursor)))
                cursor = pieceEnd
            }
            return cursor == end ? .mapped(pieces) : .unmapped
        }
    }
}
