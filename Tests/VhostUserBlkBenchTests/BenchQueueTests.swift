import Testing
import VhostUserFrontEnd
import VirtioCore
@testable import VhostUserBlkBench
import VirtioSpec

/// The benchmark's ring driver against a device played by the test on the same guest RAM: a
/// back end that reports what it was never given is an error, not a crash or a miscount.
@Suite("Benchmark ring driver")
struct BenchQueueTests {
    private func makeQueue(indirect: Bool = false) throws -> BenchQueue {
        let ram = try GuestRAM(size: 1 << 20)
        return try BenchQueue(index: 0, ram: ram, size: 16, depth: 4, blockSize: 4096, indirect: indirect, eventIndex: true)
    }

    /// Writes used element `position` and publishes used->idx = `index`, as a device would.
    private func complete(_ queue: BenchQueue, position: Int, id: UInt32, length: UInt32 = 1, index: UInt16) {
        let offset = SplitRing.usedElementOffset(slot: position)
        RingMemory.storeUInt32(id, queue.usedRing.pointer, offset: offset)
        RingMemory.storeUInt32(length, queue.usedRing.pointer, offset: offset + 4)
        RingMemory.storeReleaseUInt16(index, queue.usedRing.pointer, offset: SplitRing.usedIndexOffset)
    }

    @Test("requests are laid out as header, data, status; reads make the data device-writable", arguments: [false, true])
    func layout(indirect: Bool) throws {
        let queue = try makeQueue(indirect: indirect)
        queue.submit(slot: 2, type: .read, sector: 77)
        queue.publishAndKick()
        let head = RingMemory.loadUInt16(queue.availableRing.pointer, offset: SplitRing.availableEntryOffset(slot: 0))
        #expect(head == (indirect ? 2 : 6))
        #expect(RingMemory.loadUInt16(queue.availableRing.pointer, offset: SplitRing.availableIndexOffset) == 1)
        let first = SplitDescriptor(copyingFrom: queue.descriptorTable.pointer + 16 * Int(head))
        if indirect {
            #expect(first.flags == .indirect && first.length == 48)
        } else {
            #expect(first.length == 16 && first.flags == .next && first.next == 7)
            let data = SplitDescriptor(copyingFrom: queue.descriptorTable.pointer + 16 * 7)
            #expect(data.length == 4096 && data.flags == [.next, .write] && data.next == 8)
            let status = SplitDescriptor(copyingFrom: queue.descriptorTable.pointer + 16 * 8)
            #expect(status.length == 1 && status.flags == .write)
        }
    }

    @Test("completions come back in ring order with their slots")
    func harvestInOrder() throws {
        let queue = try makeQueue()
        for slot in 0..<3 { queue.submit(slot: slot, type: .write, sector: UInt64(slot)) }
        queue.publishAndKick()
        complete(queue, position: 0, id: 6, index: 1)
        complete(queue, position: 1, id: 0, index: 2)
        var seen: [Int] = []
        #expect(try queue.harvest { slot, _ in seen.append(slot) } == 2)
        #expect(seen == [2, 0])
        #expect(queue.inFlightCount == 1)
    }

    @Test("a used id that is not an in-flight head is the back end's fault", arguments: [UInt32(1), 3, 9, 15, 1000])
    func bogusUsedID(id: UInt32) throws {
        let queue = try makeQueue()
        queue.submit(slot: 0, type: .read, sector: 0)
        queue.publishAndKick()
        complete(queue, position: 0, id: id, index: 1)
        #expect(throws: BenchError.backEndMisbehaved(queue: 0, "used id \(id) is not the head of a request in flight")) {
            _ = try queue.harvest { _, _ in }
        }
    }

    @Test("the same request completed twice, or more completions than requests, is refused")
    func tooManyCompletions() throws {
        let queue = try makeQueue()
        queue.submit(slot: 0, type: .read, sector: 0)
        queue.submit(slot: 1, type: .read, sector: 8)
        queue.publishAndKick()
        complete(queue, position: 0, id: 0, index: 1)
        complete(queue, position: 1, id: 0, index: 2)
        #expect(throws: BenchError.backEndMisbehaved(queue: 0, "used id 0 is not the head of a request in flight")) {
            _ = try queue.harvest { _, _ in }
        }
        let other = try makeQueue()
        other.submit(slot: 0, type: .read, sector: 0)
        other.publishAndKick()
        complete(other, position: 0, id: 0, index: 5)
        #expect(throws: BenchError.backEndMisbehaved(queue: 0, "used index moved by 5 with 1 requests in flight")) {
            _ = try other.harvest { _, _ in }
        }
    }
}
