import Testing
import VhostUserFrontEnd
import VirtioCore

/// A split queue keeping its inflight log, replaced mid-run by a new queue object on the same
/// rings and log, as a restarted back end would be: the new one serves first what the old one
/// fetched and never completed, in fetch order, then the ring, and every request completes
/// exactly once.
@Suite("Split queue with an inflight log")
struct SplitQueueInflightTests {
    /// An inflight region in plain memory (the daemon's is a memfd mapping).
    final class Area {
        let bytes: UnsafeMutableRawPointer
        let count: Int
        let region: SplitInflightRegion

        init(queueSize: Int) {
            count = SplitInflightRegion.byteCount(queueSize: queueSize)
            bytes = .allocate(byteCount: count, alignment: 64)
            bytes.initializeMemory(as: UInt8.self, repeating: 0, count: count)  // version 0: never used
            region = SplitInflightRegion(base: bytes, queueSize: queueSize)
        }

        deinit { bytes.deallocate() }
    }

    /// A device queue on the fixture's rings, as a new back end instance would create it
    /// (QEMU restarts the ring at used->idx after losing the back end).
    private func restartedDevice(_ guest: GuestFixture, area: Area) throws -> SplitQueue {
        let addresses = guest.driver.frontEndVirtualAddresses
        let layout = try SplitQueue.Layout.translate(queueSize: guest.driver.queueSize, descriptorTable: addresses.descriptorTable,
                                                     availableRing: addresses.availableRing, usedRing: addresses.usedRing,
                                                     memory: guest.memory)
        let usedIndex = guest.device.usedIndex
        var device = SplitQueue(layout: layout, features: [.indirectDescriptors], nextAvailableIndex: usedIndex)
        try device.attachInflightRegion(area.region, regionBytes: area.count)
        return device
    }

    @Test("the restarted queue resubmits the unfinished requests in fetch order, then reads the ring on")
    func restartResubmits() throws {
        let guest = try GuestFixture(queueSize: 8)
        let area = Area(queueSize: 8)
        try guest.device.attachInflightRegion(area.region, regionBytes: area.count)
        var heads: [UInt16] = []
        for index in 0..<6 {
            let buffer = try guest.buffer(512, fill: UInt8(index))
            heads.append(try guest.driver.addChain(readable: [(buffer, 512)], writable: []))
        }
        guest.driver.publish()

        // The first instance fetches four, completes the third and the first, then dies.
        var fetched: [UInt16] = []
        for _ in 0..<4 { fetched.append(try #require(try guest.pop()).headIndex) }
        #expect(fetched == Array(heads[0..<4]))
        guest.device.pushUsed(head: fetched[2], writtenLength: 0)
        guest.device.pushUsed(head: fetched[0], writtenLength: 0)
        guest.device.publishUsed()
        #expect(area.region.usedIndex == 2)

        var device = try restartedDevice(guest, area: area)
        #expect(device.pendingResubmissions == 2)
        #expect(device.nextAvailableIndex == 4)
        var served: [UInt16] = []
        while let chain = try device.popAvailable(memory: guest.memory) {
            served.append(chain.headIndex)
            #expect(chain.readableByteCount == 512)
        }
        #expect(served == [fetched[1], fetched[3], heads[4], heads[5]])
        for head in served { device.pushUsed(head: head, writtenLength: 0) }
        device.publishUsed()
        let completed = guest.driver.takeUsed().map { UInt16($0.id) }
        #expect(completed.sorted() == heads.sorted(), "every request completed exactly once")
        // Nothing is left in flight in the log.
        #expect((0..<8).allSatisfy { !area.region.isInflight(UInt16($0)) })
        #expect(area.region.usedIndex == 6)
    }

    @Test("with nothing in flight the restarted queue simply continues where the driver's used ring is")
    func cleanRestart() throws {
        let guest = try GuestFixture(queueSize: 8)
        let area = Area(queueSize: 8)
        try guest.device.attachInflightRegion(area.region, regionBytes: area.count)
        let buffer = try guest.buffer(64)
        let head = try guest.driver.addChain(readable: [(buffer, 64)], writable: [])
        guest.driver.publish()
        let chain = try #require(try guest.pop())
        guest.device.pushUsed(head: chain.headIndex, writtenLength: 0)
        guest.device.publishUsed()
        var device = try restartedDevice(guest, area: area)
        #expect(device.pendingResubmissions == 0 && device.nextAvailableIndex == 1)
        #expect(try device.popAvailable(memory: guest.memory) == nil)
        #expect(guest.driver.takeUsed().map(\.id) == [UInt32(head)])
    }
}
