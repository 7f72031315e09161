import VirtioCore

/// A plain model of the split-ring rules, written independently of `SplitQueue` over byte
/// arrays and guest-physical ranges, to compare the device against in randomized tests.
struct ReferenceWalker {
    struct Region {
        let start: UInt64
        let size: UInt64
        var end: UInt64 { start + size }
    }

    enum Outcome: Equatable {
        case empty
        case chain(head: UInt16, readable: [GuestFixture.Range], writable: [GuestFixture.Range])
        case error(VirtqueueError)
    }

    let regions: [Region]
    let queueSize: Int
    let indirectAllowed: Bool
    let segmentCapacity: Int
    /// Reads bytes at a guest-physical address (nil if unmapped).
    let read: (UInt64, Int) -> [UInt8]?

    private func decode(_ bytes: [UInt8]) -> (address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        func value(_ range: Swift.Range<Int>) -> UInt64 {
            range.reversed().reduce(0) { $0 << 8 | UInt64(bytes[$1]) }
        }
        return (value(0..<8), UInt32(value(8..<12)), UInt16(value(12..<14)), UInt16(value(14..<16)))
    }

    private enum Split {
        case ranges([GuestFixture.Range])
        case overflow
        case unmapped
        case tooMany
    }

    /// Splits a buffer along region boundaries, as the device's segment translation does.
    private func split(_ address: UInt64, _ length: UInt64, budget: Int) -> Split {
        if length == 0 { return .ranges([]) }
        if address > UInt64.max - length { return .overflow }
        guard var index = regions.firstIndex(where: { address >= $0.start && address < $0.end }) else { return .unmapped }
        var pieces: [GuestFixture.Range] = []
        var cursor = address
        var remaining = length
        while true {
            let region = regions[index]
            let piece = min(remaining, region.end - cursor)
            if pieces.count >= budget { return .tooMany }
            pieces.append(.init(address: cursor, length: piece))
            remaining -= piece
            if remaining == 0 { return .ranges(pieces) }
            cursor = region.end
            index += 1
            if index >= regions.count || regions[index].start != cursor { return .unmapped }
        }
    }

    /// The outcome of popping with `availableIndex` published, `next` the next index to process.
    func pop(descriptorTable: UInt64, availableRing: [UInt16], availableIndex: UInt16, next: UInt16) -> Outcome {
        let pending = availableIndex &- next
        if pending == 0 { return .empty }
        if Int(pending) > queueSize {
            return .error(.availableIndexJumped(previous: next, current: availableIndex, queueSize: queueSize))
        }
        return walk(head: availableRing[Int(next) % queueSize], descriptorTable: descriptorTable)
    }

    func walk(head: UInt16, descriptorTable: UInt64) -> Outcome {
        var table = descriptorTable
        var entries = queueSize
        var inIndirect = false
        var index = head
        var buffers = 0
        var seenWritable = false
        var readable: [GuestFixture.Range] = []
        var writable: [GuestFixture.Range] = []
        var total: UInt64 = 0
        while true {
            if Int(index) >= entries {
                return .error(inIndirect ? .indirectIndexOutOfRange(index: index, tableSize: entries)
                                         : .descriptorIndexOutOfRange(index: index, queueSize: queueSize))
            }
            guard let bytes = read(table + UInt64(index) * 16, 16) else {
                fatalError("the model reads tables the device has already validated")
            }
            let d = decode(bytes)
            if d.flags & 4 != 0 {
                if inIndirect { return .error(.nestedIndirect) }
                if !indirectAllowed { return .error(.indirectNotNegotiated) }
                if d.flags & 1 != 0 { return .error(.indirectWithNext) }
                if d.length == 0 || d.length % 16 != 0 || Int(d.length / 16) > queueSize {
                    return .error(.indirectTableLengthInvalid(length: d.length))
                }
                switch split(d.address, UInt64(d.length), budget: .max) {
                case .overflow:
                    return .error(.addressOverflow(address: d.address, length: d.length))
                case .unmapped, .tooMany:
                    return .error(.addressNotInGuestMemory(address: d.address, length: d.length))
                case .ranges(let pieces) where pieces.count > 1:
                    return .error(.indirectTableSpansRegions(address: d.address, length: d.length))
                case .ranges:
                    break
                }
                table = d.address
                entries = Int(d.length / 16)
                inIndirect = true
                index = 0
                continue
            }
            if buffers >= queueSize { return .error(.chainTooLong(limit: queueSize)) }
            buffers += 1
            let isWritable = d.flags & 2 != 0
            if isWritable {
                seenWritable = true
            } else if seenWritable {
                return .error(.readableAfterWritable)
            }
            if d.length > 0 {
                switch split(d.address, UInt64(d.length), budget: segmentCapacity - readable.count - writable.count) {
                case .overflow: return .error(.addressOverflow(address: d.address, length: d.length))
                case .unmapped: return .error(.addressNotInGuestMemory(address: d.address, length: d.length))
                case .tooMany: return .error(.tooManySegments(limit: segmentCapacity))
                case .ranges(let pieces):
                    if isWritable { writable += pieces } else { readable += pieces }
                }
                total += UInt64(d.length)
                if total > 1 << 32 { return .error(.chainByteCountTooLarge(limit: 1 << 32)) }
            }
            if d.flags & 1 == 0 { break }
            index = d.next
        }
        return .chain(head: head, readable: readable, writable: writable)
    }
}
