#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore

@Suite struct SplitQueueTests {
    typealias Range = GuestFixture.Range

    @Test func popReturnsNilWhenNothingIsAvailable() throws {
        let fixture = try GuestFixture()
        #expect(try fixture.pop() == nil)
        // Added but not yet published: still invisible.
        try fixture.driver.addChain(readable: [(try fixture.buffer(16), 16)])
        #expect(try fixture.pop() == nil)
        fixture.driver.publish()
        #expect(try fixture.pop() != nil)
        #expect(try fixture.pop() == nil)
    }

    @Test func popsSimpleChainWithReadableThenWritableSegments() throws {
        let fixture = try GuestFixture()
        let header = try fixture.buffer(16, fill: 0x11)
        let data = try fixture.buffer(512, fill: 0x22)
        let status = try fixture.buffer(1, fill: 0xff)
        let head = try fixture.driver.addChain(readable: [(header, 16)], writable: [(data, 512), (status, 1)])
        fixture.driver.publish()

        let chain = try #require(try fixture.pop())
        #expect(chain.headIndex == head)
        #expect(chain.readableByteCount == 16)
        #expect(chain.writableByteCount == 513)
        #expect(fixture.ranges(chain.readable) == [Range(address: header.rawValue, length: 16)])
        #expect(fixture.ranges(chain.writable) == [Range(address: data.rawValue, length: 512), Range(address: status.rawValue, length: 1)])
        // The device's view is the same shared memory as the driver's.
        #expect(chain.readable[0].pointer.load(as: UInt8.self) == 0x11)
        chain.writable[0].pointer.storeBytes(of: 0x5a, toByteOffset: 7, as: UInt8.self)
        #expect(try fixture.ram.read(1, at: gpa(data.rawValue + 7)) == [0x5a])
        #expect(fixture.device.nextAvailableIndex == 1)
    }

    @Test func popsBufferSpanningTwoAdjacentRegionsAsTwoSegments() throws {
        let fixture = try GuestFixture()
        let start = GuestFixture.region1Start - 0x100
        try fixture.ram.write((0..<0x200).map { UInt8(truncatingIfNeeded: $0) }, at: gpa(start))
        try fixture.driver.addChain(readable: [(gpa(start), 0x200)], writable: [(try fixture.buffer(1), 1)])
        fixture.driver.publish()

        let chain = try #require(try fixture.pop())
        #expect(fixture.ranges(chain.readable) == [Range(address: start, length: 0x100), Range(address: GuestFixture.region1Start, length: 0x100)])
        var copy = [UInt8](repeating: 0, count: 0x200)
        #expect(copy.withUnsafeMutableBytes { chain.copyReadableBytes(into: $0) } == 0x200)
        #expect(copy == (0..<0x200).map { UInt8(truncatingIfNeeded: $0) })
    }

    @Test func popsBuffersInEveryRegion() throws {
        let fixture = try GuestFixture()
        let last = GuestFixture.region2Start + UInt64(GuestFixture.region2Size) - 8
        try fixture.driver.addChain(readable: [(gpa(0x8_0000), 8), (gpa(GuestFixture.region1End - 8), 8)], writable: [(gpa(last), 8)])
        fixture.driver.publish()
        let chain = try #require(try fixture.pop())
        #expect(fixture.ranges(chain.readable) == [Range(address: 0x8_0000, length: 8), Range(address: GuestFixture.region1End - 8, length: 8)])
        #expect(fixture.ranges(chain.writable) == [Range(address: last, length: 8)])
    }

    @Test func popsChainFromIndirectTable() throws {
        let fixture = try GuestFixture()
        let header = try fixture.buffer(16)
        let data = try fixture.buffer(4096)
        let status = try fixture.buffer(1)
        let head = try fixture.driver.addChain(readable: [(header, 16)], writable: [(data, 4096), (status, 1)], indirect: true)
        fixture.driver.publish()
        #expect(fixture.driver.freeDescriptorCount == 7)

        let chain = try #require(try fixture.pop())
        #expect(chain.headIndex == head)
        #expect(fixture.ranges(chain.readable) == [Range(address: header.rawValue, length: 16)])
        #expect(fixture.ranges(chain.writable) == [Range(address: data.rawValue, length: 4096), Range(address: status.rawValue, length: 1)])
    }

    @Test func popsDirectDescriptorsFollowedByOneIndirectTable() throws {
        // VIRTIO 1.2, indirect descriptors, device requirements: zero or more normal descriptors followed by a single indirect one.
        let fixture = try GuestFixture()
        let table = try fixture.driver.writeIndirectTable([
            descriptor(0x9000, 32, [.next], next: 1),
            descriptor(0xa000, 64, .write),
        ])
        try fixture.offerRaw([
            descriptor(0x8000, 16, [.next], next: 1),
            descriptor(table.guestPhysicalAddress.rawValue, 32, .indirect),
        ])
        let chain = try #require(try fixture.pop())
        #expect(fixture.ranges(chain.readable) == [Range(address: 0x8000, length: 16), Range(address: 0x9000, length: 32)])
        #expect(fixture.ranges(chain.writable) == [Range(address: 0xa000, length: 64)])
    }

    @Test func ignoresWriteFlagOnTheIndirectDescriptor() throws {
        let fixture = try GuestFixture()
        let table = try fixture.driver.writeIndirectTable([descriptor(0x9000, 32)])
        try fixture.offerRaw([descriptor(table.guestPhysicalAddress.rawValue, 16, [.indirect, .write])])
        let chain = try #require(try fixture.pop())
        #expect(chain.readableByteCount == 32)
        #expect(chain.writableByteCount == 0)
    }

    @Test func skipsZeroLengthDescriptorsWithoutLookingAtTheirAddress() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([
            descriptor(0xdead_beef_0000, 0, [.next], next: 1),     // unmapped address, zero length
            descriptor(0x8000, 16, [.next], next: 2),
            descriptor(UInt64.max, 0, [.write, .next], next: 3),  // would wrap 2^64 if it had a length
            descriptor(0x9000, 1, .write),
        ])
        let chain = try #require(try fixture.pop())
        #expect(fixture.ranges(chain.readable) == [Range(address: 0x8000, length: 16)])
        #expect(fixture.ranges(chain.writable) == [Range(address: 0x9000, length: 1)])
    }

    @Test func acceptsChainAsLongAsTheQueue() throws {
        let fixture = try GuestFixture(queueSize: 8)
        let buffers = try (0..<8).map { _ in (address: try fixture.buffer(8), length: UInt32(8)) }
        try fixture.driver.addChain(readable: Array(buffers.prefix(4)), writable: Array(buffers.suffix(4)))
        fixture.driver.publish()
        let chain = try #require(try fixture.pop())
        #expect(chain.readable.count == 4)
        #expect(chain.writable.count == 4)
    }

    @Test func acceptsIndirectTableAsLongAsTheQueue() throws {
        let fixture = try GuestFixture(queueSize: 8)
        let buffers = try (0..<8).map { _ in (address: try fixture.buffer(8), length: UInt32(8)) }
        try fixture.driver.addChain(readable: buffers, indirect: true)
        fixture.driver.publish()
        #expect(try fixture.pop()?.readableByteCount == 64)
    }

    /// virtio-blk advertises seg_max from its own queue-size setting; a guest with a smaller ring
    /// then puts long requests into one indirect table longer than the ring.
    @Test func acceptsIndirectTableLongerThanTheRingUpToTheDeviceLimit() throws {
        let fixture = try GuestFixture(queueSize: 8, maximumChainLength: 32)
        let buffers = try (0..<32).map { _ in (address: try fixture.buffer(8), length: UInt32(8)) }
        try fixture.driver.addChain(readable: buffers, indirect: true)
        fixture.driver.publish()
        #expect(try fixture.pop()?.readableByteCount == 256)
    }

    @Test func refusesIndirectTableBeyondTheDeviceLimit() throws {
        let fixture = try GuestFixture(queueSize: 8, maximumChainLength: 32)
        let buffers = try (0..<33).map { _ in (address: try fixture.buffer(8), length: UInt32(8)) }
        try fixture.driver.addChain(readable: buffers, indirect: true)
        fixture.driver.publish()
        #expect(throws: VirtqueueError.indirectTableLengthInvalid(length: 33 * 16)) { try fixture.pop() }
    }

    @Test func completesBatchWithOneIndexStore() throws {
        let fixture = try GuestFixture()
        var heads: [UInt16] = []
        for _ in 0..<3 {
            heads.append(try fixture.driver.addChain(readable: [(try fixture.buffer(16), 16)], writable: [(try fixture.buffer(1), 1)]))
        }
        fixture.driver.publish()
        var popped: [UInt16] = []
        while let chain = try fixture.pop() { popped.append(chain.headIndex) }
        #expect(popped == heads)

        for (number, head) in popped.enumerated() {
            fixture.device.pushUsed(head: head, writtenLength: UInt32(number + 1))
        }
        #expect(fixture.device.unpublishedUsedCount == 3)
        // Pushed but not published: the driver sees nothing yet.
        #expect(fixture.driver.usedIndex == 0)
        #expect(fixture.driver.takeUsed().isEmpty)
        fixture.device.publishUsed()
        #expect(fixture.device.usedIndex == 3)
        #expect(fixture.device.unpublishedUsedCount == 0)
        #expect(fixture.driver.takeUsed() == heads.enumerated().map { .init(id: UInt32($1), length: UInt32($0 + 1)) })
        #expect(fixture.driver.freeDescriptorCount == 8)
    }

    @Test func keepsGoingRoundTheRingManyTimes() throws {
        let fixture = try GuestFixture(queueSize: 4)
        let buffer = try fixture.buffer(64)
        for round in 0..<100 {
            // Direct chains take 2 of the 4 descriptors, indirect ones 1.
            let indirect = round % 3 == 0
            let chains = indirect ? round % 4 + 1 : round % 2 + 1
            for _ in 0..<chains {
                try fixture.driver.addChain(readable: [(buffer, 16)], writable: [(gpa(buffer.rawValue + 16), 48)], indirect: indirect)
            }
            fixture.driver.publish()
            while let chain = try fixture.pop() {
                fixture.device.pushUsed(head: chain.headIndex, writtenLength: UInt32(chain.writableByteCount))
            }
            fixture.device.publishUsed()
            let used = fixture.driver.takeUsed()
            #expect(used.count == chains)
            #expect(used.allSatisfy { $0.length == 48 })
        }
        #expect(fixture.device.nextAvailableIndex == fixture.driver.availableIndex)
        #expect(fixture.device.usedIndex == fixture.driver.availableIndex)
    }

    @Test func indicesRunAcrossTheU16Wrap() throws {
        let fixture = try GuestFixture(startIndex: 65534)
        #expect(fixture.device.usedIndex == 65534)
        #expect(fixture.device.nextAvailableIndex == 65534)
        for _ in 0..<4 { try fixture.driver.addChain(readable: [(try fixture.buffer(8), 8)]) }
        fixture.driver.publish()
        var count = 0
        while let chain = try fixture.pop() {
            fixture.device.pushUsed(head: chain.headIndex, writtenLength: 0)
            count += 1
        }
        fixture.device.publishUsed()
        #expect(count == 4)
        #expect(fixture.device.nextAvailableIndex == 2)
        #expect(fixture.device.usedIndex == 2)
        #expect(fixture.driver.takeUsed().count == 4)
    }

    @Test func usedIndexStartsFromTheUsedRing() throws {
        // A previous back end left used->idx at 500 and had consumed 503 chains (3 in flight).
        let ram = try GuestRAM(regions: GuestFixture.defaultRegions)
        let driver = try DriverSplitQueue(ram: ram, queueSize: 8)
        driver.startIndices(at: 500)
        let memory = try ram.deviceView()
        let addresses = driver.frontEndVirtualAddresses
        let layout = try SplitQueue.Layout.translate(queueSize: 8, descriptorTable: addresses.descriptorTable,
                                                     availableRing: addresses.availableRing, usedRing: addresses.usedRing, memory: memory)
        let queue = SplitQueue(layout: layout, features: [], nextAvailableIndex: 503)
        #expect(queue.usedIndex == 500)
        #expect(queue.nextAvailableIndex == 503)
    }

    @Test func chainKeepsItsMemoryMappedAfterTheTableIsReplaced() throws {
        let fixture = try GuestFixture()
        try fixture.ram.write([0x77], at: gpa(GuestFixture.region2Start))
        try fixture.driver.addChain(readable: [(gpa(GuestFixture.region2Start), 1)])
        fixture.driver.publish()
        let chain = try #require(try fixture.pop())
        // The front end removes region 2; the chain still holds the table it was translated with.
        let region = try #require(fixture.memory.region(containing: gpa(GuestFixture.region2Start)))
        let smaller = try fixture.memory.removing(guestPhysicalStart: region.guestPhysicalStart,
                                                  frontEndVirtualStart: region.frontEndVirtualStart, size: region.size)
        #expect(smaller.pointer(gpa(GuestFixture.region2Start), length: 1) == nil)
        #expect(chain.memory === fixture.memory)
        #expect(chain.readable[0].pointer.load(as: UInt8.self) == 0x77)
    }

    @Test func relocateKeepsIndices() throws {
        let fixture = try GuestFixture()
        try fixture.driver.addChain(readable: [(try fixture.buffer(8), 8)])
        fixture.driver.publish()
        _ = try fixture.pop()
        let layout = fixture.device.layout
        try fixture.device.relocate(to: layout)
        #expect(fixture.device.nextAvailableIndex == 1)
        let other = try GuestFixture(queueSize: 16)
        #expect(throws: VirtqueueError.invalidQueueSize(16)) { try fixture.device.relocate(to: other.device.layout) }
    }

    @Test func staleChainIsAProgrammingErrorThatTraps() async {
        // A Swift trap is ud2 on x86-64: SIGILL, not an error thrown by the body.
        await #expect(processExitsWith: .signal(SIGILL)) {
            let fixture = try GuestFixture()
            try fixture.driver.addChain(readable: [(try fixture.buffer(8), 8)])
            try fixture.driver.addChain(readable: [(try fixture.buffer(8), 8)])
            fixture.driver.publish()
            let first = try #require(try fixture.pop())
            _ = try fixture.pop()
            _ = first.readable[0]   // overwritten by the second pop
        }
    }
}
