import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore

@Suite struct SplitQueueLayoutTests {
    private func translate(_ fixture: GuestFixture, queueSize: Int = 8, descriptorTable: UInt64? = nil,
                           availableRing: UInt64? = nil, usedRing: UInt64? = nil) throws(VirtqueueError) -> SplitQueue.Layout {
        let addresses = fixture.driver.frontEndVirtualAddresses
        return try SplitQueue.Layout.translate(
            queueSize: queueSize,
            descriptorTable: FrontEndVirtualAddress(descriptorTable ?? addresses.descriptorTable.rawValue),
            availableRing: FrontEndVirtualAddress(availableRing ?? addresses.availableRing.rawValue),
            usedRing: FrontEndVirtualAddress(usedRing ?? addresses.usedRing.rawValue),
            memory: fixture.memory)
    }

    @Test func translatesRingAddressesFromFrontEndVirtualSpace() throws {
        let fixture = try GuestFixture()
        let layout = try translate(fixture)
        let region = try #require(fixture.memory.regions.first)
        let offset = Int(fixture.driver.guestPhysicalAddresses.descriptorTable.rawValue)
        #expect(layout.descriptorTable == region.hostStart + offset)
        #expect(layout.queueSize == 8)
    }

    @Test func translatesRingAddressesFromGuestPhysicalSpace() throws {
        let fixture = try GuestFixture()
        let addresses = fixture.driver.guestPhysicalAddresses
        let layout = try SplitQueue.Layout.translate(queueSize: 8, descriptorTable: addresses.descriptorTable,
                                                     availableRing: addresses.availableRing, usedRing: addresses.usedRing,
                                                     memory: fixture.memory)
        #expect(layout.usedRing == fixture.device.layout.usedRing)
    }

    @Test(arguments: [0, 3, 6, 65536, -8, 32769])
    func rejectsQueueSizesThatAreNotPowersOfTwoUpTo32768(size: Int) throws {
        let fixture = try GuestFixture()
        #expect(throws: VirtqueueError.invalidQueueSize(size)) { try translate(fixture, queueSize: size) }
    }

    @Test func rejectsUnalignedRingAddresses() throws {
        let fixture = try GuestFixture()
        let addresses = fixture.driver.frontEndVirtualAddresses
        let table = addresses.descriptorTable.rawValue
        #expect(throws: VirtqueueError.ringMisaligned(.descriptorTable, address: table + 8, alignment: 16)) {
            try translate(fixture, descriptorTable: table + 8)
        }
        let available = addresses.availableRing.rawValue
        #expect(throws: VirtqueueError.ringMisaligned(.availableRing, address: available + 1, alignment: 2)) {
            try translate(fixture, availableRing: available + 1)
        }
        let used = addresses.usedRing.rawValue
        #expect(throws: VirtqueueError.ringMisaligned(.usedRing, address: used + 2, alignment: 4)) {
            try translate(fixture, usedRing: used + 2)
        }
    }

    @Test func rejectsRingsOutsideGuestMemory() throws {
        let fixture = try GuestFixture()
        // Front-end virtual space: region 0 at 0x7f00_0000_0000, region 1 at 0x7f80_0000_0000.
        let gap: UInt64 = 0x7f40_0000_0000
        #expect(throws: VirtqueueError.ringNotInGuestMemory(.descriptorTable, address: gap, length: 128)) {
            try translate(fixture, descriptorTable: gap)
        }
        #expect(throws: VirtqueueError.ringNotInGuestMemory(.availableRing, address: 0, length: 22)) {
            try translate(fixture, availableRing: 0)
        }
        // The used ring must not run off the end of a region, even by its last byte.
        let lastBytes = 0x7f00_0000_0000 + UInt64(GuestFixture.regionSize) - 68
        #expect(throws: VirtqueueError.ringNotInGuestMemory(.usedRing, address: lastBytes, length: 70)) {
            try translate(fixture, usedRing: lastBytes)
        }
        #expect(throws: Never.self) { try translate(fixture, usedRing: lastBytes - 4) }
    }

    @Test func rejectsRingCrossingIntoAnAdjacentRegion() throws {
        // Regions 0 and 1 are adjacent in guest-physical space: a ring across them is still refused.
        let fixture = try GuestFixture()
        let across = GuestPhysicalAddress(GuestFixture.region1Start - 64)
        #expect(throws: VirtqueueError.ringNotInGuestMemory(.descriptorTable, address: across.rawValue, length: 128)) {
            try SplitQueue.Layout.translate(queueSize: 8, descriptorTable: across,
                                            availableRing: fixture.driver.guestPhysicalAddresses.availableRing,
                                            usedRing: fixture.driver.guestPhysicalAddresses.usedRing, memory: fixture.memory)
        }
    }

    @Test func rejectsRingWhoseHostAddressIsMisaligned() throws {
        // The region starts 2 bytes into a page of its memfd: a 4-aligned front-end address lands on
        // a host address that is only 2-aligned, which the atomic index accesses cannot use.
        let ram = try GuestRAM(regions: [GuestRAM.RegionSpec(guestPhysicalStart: gpa(0), size: 0x1_0000,
                                                             frontEndVirtualStart: FrontEndVirtualAddress(0x1000_0000), mmapOffset: 2)])
        let memory = try ram.deviceView()
        let error = #expect(throws: VirtqueueError.self) {
            try SplitQueue.Layout.translate(queueSize: 8, descriptorTable: FrontEndVirtualAddress(0x1000_0000),
                                            availableRing: FrontEndVirtualAddress(0x1000_1000),
                                            usedRing: FrontEndVirtualAddress(0x1000_2000), memory: memory)
        }
        guard case .ringMisaligned(.descriptorTable, _, 16) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
    }
}
