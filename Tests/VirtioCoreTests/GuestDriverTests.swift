import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore

/// The test front end's guest side: RAM, allocator and driver queue.
@Suite struct GuestDriverTests {
    @Test func allocatesAlignedSpaceFromTheFirstRegionWithRoom() throws {
        let ram = try GuestRAM(regions: [
            .init(guestPhysicalStart: gpa(0x1000), size: 0x100),
            .init(guestPhysicalStart: gpa(0x10_0000), size: 0x1000, frontEndVirtualStart: FrontEndVirtualAddress(0x5000_0000)),
        ])
        let first = try ram.allocate(size: 0x10, alignment: 1)
        let second = try ram.allocate(size: 0x20, alignment: 64)
        #expect(first.guestPhysicalAddress == gpa(0x1000))
        #expect(second.guestPhysicalAddress == gpa(0x1040))
        #expect(second.frontEndVirtualAddress == FrontEndVirtualAddress(GuestRAM.defaultFrontEndVirtualBase + 0x1040))
        let third = try ram.allocate(size: 0x100)   // no longer fits in region 0
        #expect(third.guestPhysicalAddress == gpa(0x10_0000))
        #expect(third.frontEndVirtualAddress == FrontEndVirtualAddress(0x5000_0000))
        #expect(throws: GuestDriverError.outOfSpace(requested: 0x1000)) { try ram.allocate(size: 0x1000) }
    }

    @Test func readsAndWritesAcrossAdjacentRegionsButNotGaps() throws {
        let fixture = try GuestFixture()
        let start = gpa(GuestFixture.region1Start - 3)
        try fixture.ram.write([1, 2, 3, 4, 5, 6], at: start)
        #expect(try fixture.ram.read(6, at: start) == [1, 2, 3, 4, 5, 6])
        #expect(fixture.ram.pointer(start, length: 6) == nil)   // not contiguous in one region
        #expect(fixture.memory.pointer(gpa(GuestFixture.region1Start), length: 3)?.load(as: UInt8.self) == 4)
        #expect(throws: GuestDriverError.addressNotMapped(gpa(GuestFixture.region1End - 2), length: 4)) {
            try fixture.ram.write([0, 0, 0, 0], at: gpa(GuestFixture.region1End - 2))
        }
        // A failed write changes nothing.
        #expect(try fixture.ram.read(2, at: gpa(GuestFixture.region1End - 2)) == [0, 0])
    }

    @Test func rejectsOverlappingOrEmptyRegions() throws {
        #expect(throws: GuestDriverError.self) {
            try GuestRAM(regions: [.init(guestPhysicalStart: gpa(0), size: 0x2000), .init(guestPhysicalStart: gpa(0x1000), size: 0x1000)])
        }
        #expect(throws: GuestDriverError.self) { try GuestRAM(regions: [.init(guestPhysicalStart: gpa(0), size: 0)]) }
        #expect(throws: GuestDriverError.self) { try GuestRAM(regions: []) }
    }

    @Test func describesRegionsTheWayTheBackEndMapsThem() throws {
        let page = MemoryMapping.pageSize
        let ram = try GuestRAM(regions: [.init(guestPhysicalStart: gpa(0x4000_0000), size: 2 * page,
                                               frontEndVirtualStart: FrontEndVirtualAddress(0x7000_0000), mmapOffset: UInt64(page) + 0x40)])
        let description = try #require(ram.regionDescriptions.first)
        #expect(description.mmapOffset == UInt64(page) + 0x40)
        #expect(try description.descriptor.size() == UInt64(3 * page) + 0x40)
        try ram.write([0xc3], at: gpa(0x4000_0000 + 0x123))
        let memory = try ram.deviceView()
        #expect(memory.pointer(gpa(0x4000_0000 + 0x123), length: 1)?.load(as: UInt8.self) == 0xc3)
        #expect(memory.pointer(FrontEndVirtualAddress(0x7000_0123), length: 1)?.load(as: UInt8.self) == 0xc3)
    }

    @Test func reportsRingAddressesInBothSpaces() throws {
        let fixture = try GuestFixture(queueSize: 16)
        let physical = fixture.driver.guestPhysicalAddresses
        let virtual = fixture.driver.frontEndVirtualAddresses
        for (gpaValue, uva) in [(physical.descriptorTable, virtual.descriptorTable), (physical.availableRing, virtual.availableRing),
                                (physical.usedRing, virtual.usedRing)] {
            #expect(fixture.ram.frontEndVirtualAddress(of: gpaValue) == uva)
        }
        #expect(physical.descriptorTable.rawValue % 16 == 0)
        #expect(physical.availableRing.rawValue % 2 == 0)
        #expect(physical.usedRing.rawValue % 4 == 0)
    }

    @Test func refusesImpossibleChains() throws {
        let fixture = try GuestFixture(queueSize: 2)
        #expect(throws: GuestDriverError.emptyChain) { try fixture.driver.addChain(readable: []) }
        #expect(throws: GuestDriverError.noFreeDescriptors(needed: 3, available: 2)) {
            try fixture.driver.addChain(readable: [(gpa(0x8000), 1), (gpa(0x8000), 1), (gpa(0x8000), 1)])
        }
        // Indirect, the same three buffers take one descriptor.
        try fixture.driver.addChain(readable: [(gpa(0x8000), 1), (gpa(0x8000), 1), (gpa(0x8000), 1)], indirect: true)
        #expect(throws: GuestDriverError.indexOutOfRange(2, limit: 2)) { try fixture.driver.writeDescriptor(descriptor(0, 0), at: 2) }
        #expect(throws: GuestDriverError.invalidQueueSize(3)) { try DriverSplitQueue(ram: fixture.ram, queueSize: 3) }
    }

    @Test func driverKicksWithoutEventIndexUnlessTheDeviceSuppressesThem() throws {
        let fixture = try GuestFixture()
        try fixture.driver.addChain(readable: [(gpa(0x8000), 1)])
        fixture.driver.publish()
        #expect(fixture.driver.needsKick())
        fixture.device.disableNotifications()
        try fixture.driver.addChain(readable: [(gpa(0x8000), 1)])
        fixture.driver.publish()
        #expect(!fixture.driver.needsKick())
    }

    @Test func driverReArmsInterruptsAndSeesLateCompletions() throws {
        let fixture = try GuestFixture(features: [.eventIndex])
        try fixture.driver.addChain(readable: [(gpa(0x8000), 1)])
        fixture.driver.publish()
        let chain = try #require(try fixture.pop())
        #expect(!fixture.driver.enableInterrupts())
        fixture.device.pushUsed(head: chain.headIndex, writtenLength: 0)
        fixture.device.publishUsed()
        #expect(fixture.driver.enableInterrupts())   // used idx moved past what it has seen
        #expect(fixture.driver.takeUsed().count == 1)
        #expect(!fixture.driver.enableInterrupts())
    }
}
