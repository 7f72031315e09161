import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore

/// One test per rule of the descriptor walk and the available ring: each asserts the specific
/// error, and that the queue is then broken.
@Suite struct SplitQueueViolationTests {
    /// Pops once and expects `error`; then checks the queue stays broken at the same index.
    private func expectBroken(_ fixture: GuestFixture, with error: VirtqueueError,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        let before = fixture.device.nextAvailableIndex
        #expect(throws: error, sourceLocation: sourceLocation) { try fixture.pop() }
        #expect(fixture.device.brokenReason == error, sourceLocation: sourceLocation)
        #expect(fixture.device.nextAvailableIndex == before, sourceLocation: sourceLocation)
        #expect(throws: error, sourceLocation: sourceLocation) { try fixture.pop() }
        #expect(error.consequence == .queueBroken)
    }

    @Test func rejectsDescriptorLoop() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([descriptor(0x8000, 16, .next, next: 1), descriptor(0x9000, 16, .next, next: 0)])
        expectBroken(fixture, with: .chainTooLong(limit: 8))
    }

    @Test func rejectsSelfLoopOfZeroLengthDescriptors() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([descriptor(0, 0, .next, next: 0)])
        expectBroken(fixture, with: .chainTooLong(limit: 8))
    }

    @Test func rejectsChainLongerThanTheQueue() throws {
        // Two direct descriptors and an indirect table of seven: nine buffers in a queue of eight.
        let fixture = try GuestFixture()
        let entries = (0..<7).map { descriptor(0x9000 + UInt64($0) * 16, 16, $0 < 6 ? .next : [], next: UInt16($0 + 1)) }
        let table = try fixture.driver.writeIndirectTable(entries)
        try fixture.offerRaw([
            descriptor(0x8000, 16, .next, next: 1),
            descriptor(0x8100, 16, .next, next: 2),
            descriptor(table.guestPhysicalAddress.rawValue, 7 * 16, .indirect),
        ])
        expectBroken(fixture, with: .chainTooLong(limit: 8))
    }

    @Test func rejectsLoopInsideIndirectTable() throws {
        let fixture = try GuestFixture()
        let table = try fixture.driver.writeIndirectTable([descriptor(0x9000, 16, .next, next: 1), descriptor(0x9100, 16, .next, next: 0)])
        try fixture.offerRaw([descriptor(table.guestPhysicalAddress.rawValue, 32, .indirect)])
        expectBroken(fixture, with: .chainTooLong(limit: 8))
    }

    @Test func rejectsHeadOutOfRange() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([], head: 8)
        expectBroken(fixture, with: .descriptorIndexOutOfRange(index: 8, queueSize: 8))
    }

    @Test func rejectsNextOutOfRange() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([descriptor(0x8000, 16, .next, next: 200)])
        expectBroken(fixture, with: .descriptorIndexOutOfRange(index: 200, queueSize: 8))
    }

    @Test func rejectsNextOutOfRangeInsideIndirectTable() throws {
        let fixture = try GuestFixture()
        let table = try fixture.driver.writeIndirectTable([descriptor(0x9000, 16, .next, next: 2), descriptor(0x9100, 16)])
        try fixture.offerRaw([descriptor(table.guestPhysicalAddress.rawValue, 32, .indirect)])
        expectBroken(fixture, with: .indirectIndexOutOfRange(index: 2, tableSize: 2))
    }

    @Test func rejectsIndirectInsideIndirect() throws {
        let fixture = try GuestFixture()
        let inner = try fixture.driver.writeIndirectTable([descriptor(0x9000, 16)])
        let outer = try fixture.driver.writeIndirectTable([descriptor(inner.guestPhysicalAddress.rawValue, 16, .indirect)])
        try fixture.offerRaw([descriptor(outer.guestPhysicalAddress.rawValue, 16, .indirect)])
        expectBroken(fixture, with: .nestedIndirect)
    }

    @Test(arguments: [UInt32(8), 24, 17, 15])
    func rejectsIndirectLengthNotAMultipleOf16(length: UInt32) throws {
        let fixture = try GuestFixture()
        let table = try fixture.driver.writeIndirectTable([descriptor(0x9000, 16), descriptor(0x9100, 16)])
        try fixture.offerRaw([descriptor(table.guestPhysicalAddress.rawValue, length, .indirect)])
        expectBroken(fixture, with: .indirectTableLengthInvalid(length: length))
    }

    @Test func rejectsZeroLengthIndirectTable() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([descriptor(0x9000, 0, .indirect)])
        expectBroken(fixture, with: .indirectTableLengthInvalid(length: 0))
    }

    @Test func rejectsIndirectTableWithMoreEntriesThanTheQueue() throws {
        let fixture = try GuestFixture()
        let table = try fixture.driver.writeIndirectTable([descriptor(0x9000, 16)], entryCount: 9)
        try fixture.offerRaw([descriptor(table.guestPhysicalAddress.rawValue, 9 * 16, .indirect)])
        expectBroken(fixture, with: .indirectTableLengthInvalid(length: 144))
    }

    @Test func rejectsIndirectWithoutTheFeature() throws {
        let fixture = try GuestFixture(features: [])
        let table = try fixture.driver.writeIndirectTable([descriptor(0x9000, 16)])
        try fixture.offerRaw([descriptor(table.guestPhysicalAddress.rawValue, 16, .indirect)])
        expectBroken(fixture, with: .indirectNotNegotiated)
    }

    @Test func rejectsIndirectTogetherWithNext() throws {
        let fixture = try GuestFixture()
        let table = try fixture.driver.writeIndirectTable([descriptor(0x9000, 16)])
        try fixture.offerRaw([descriptor(table.guestPhysicalAddress.rawValue, 16, [.indirect, .next], next: 1), descriptor(0x8000, 16)])
        expectBroken(fixture, with: .indirectWithNext)
    }

    @Test func rejectsReadableAfterWritable() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([descriptor(0x8000, 16, [.write, .next], next: 1), descriptor(0x9000, 16)])
        expectBroken(fixture, with: .readableAfterWritable)
    }

    @Test func rejectsReadableInIndirectTableAfterWritableDirectDescriptor() throws {
        let fixture = try GuestFixture()
        let table = try fixture.driver.writeIndirectTable([descriptor(0x9000, 16)])
        try fixture.offerRaw([descriptor(0x8000, 16, [.write, .next], next: 1),
                              descriptor(table.guestPhysicalAddress.rawValue, 16, .indirect)])
        expectBroken(fixture, with: .readableAfterWritable)
    }

    @Test func rejectsAddressPlusLengthWrapping2To64() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([descriptor(UInt64.max - 8, 16)])
        expectBroken(fixture, with: .addressOverflow(address: UInt64.max - 8, length: 16))
    }

    @Test func rejectsIndirectTableAddressWrapping2To64() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([descriptor(UInt64.max - 15, 32, .indirect)])
        expectBroken(fixture, with: .addressOverflow(address: UInt64.max - 15, length: 32))
    }

    @Test func rejectsBufferStraddlingTheEndOfARegionIntoUnmappedSpace() throws {
        let fixture = try GuestFixture()
        // Region 1 ends at 0x20_0000 and nothing follows it.
        try fixture.offerRaw([descriptor(GuestFixture.region1End - 8, 16)])
        expectBroken(fixture, with: .addressNotInGuestMemory(address: GuestFixture.region1End - 8, length: 16))
    }

    @Test func rejectsBufferStartingAfterTheLastRegion() throws {
        let fixture = try GuestFixture()
        let end = GuestFixture.region2Start + UInt64(GuestFixture.region2Size)
        try fixture.offerRaw([descriptor(end, 1, .write)])
        expectBroken(fixture, with: .addressNotInGuestMemory(address: end, length: 1))
    }

    @Test func rejectsDescriptorAddressInAGapBetweenRegions() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([descriptor(GuestFixture.gapStart + 0x1000, 16)])
        expectBroken(fixture, with: .addressNotInGuestMemory(address: GuestFixture.gapStart + 0x1000, length: 16))
    }

    @Test func rejectsIndirectTableInAGap() throws {
        let fixture = try GuestFixture()
        try fixture.offerRaw([descriptor(GuestFixture.gapStart, 32, .indirect)])
        expectBroken(fixture, with: .addressNotInGuestMemory(address: GuestFixture.gapStart, length: 32))
    }

    @Test func rejectsIndirectTableSpanningTwoRegions() throws {
        let fixture = try GuestFixture()
        let start = GuestFixture.region1Start - 16
        try fixture.offerRaw([descriptor(start, 32, .indirect)])
        expectBroken(fixture, with: .indirectTableSpansRegions(address: start, length: 32))
    }

    @Test func rejectsAvailableIndexJumpingMoreThanTheQueueSize() throws {
        let fixture = try GuestFixture()
        fixture.driver.setAvailableIndex(9)
        expectBroken(fixture, with: .availableIndexJumped(previous: 0, current: 9, queueSize: 8))
    }

    @Test func rejectsAvailableIndexJumpAcrossTheU16Wrap() throws {
        let fixture = try GuestFixture(startIndex: 65530)
        fixture.driver.setAvailableIndex(3)   // 9 past 65530
        expectBroken(fixture, with: .availableIndexJumped(previous: 65530, current: 3, queueSize: 8))
    }

    @Test func rejectsAvailableIndexMovingBackwards() throws {
        // A decrement looks like a jump of almost 2^16.
        let fixture = try GuestFixture(startIndex: 100)
        fixture.driver.setAvailableIndex(99)
        expectBroken(fixture, with: .availableIndexJumped(previous: 100, current: 99, queueSize: 8))
    }

    @Test func acceptsAvailableIndexAdvancedByExactlyTheQueueSize() throws {
        let fixture = try GuestFixture()
        for index in 0..<8 {
            try fixture.driver.writeDescriptor(descriptor(0x8000, 16), at: index)
            fixture.driver.makeAvailable(head: UInt16(index))
        }
        fixture.driver.publish()
        for _ in 0..<8 { #expect(try fixture.pop() != nil) }
        #expect(try fixture.pop() == nil)
    }

    @Test func rejectsChainNeedingMoreSegmentsThanTheBuffer() throws {
        let fixture = try GuestFixture(maximumSegments: 2)
        try fixture.offerRaw([descriptor(0x8000, 16, .next, next: 1), descriptor(GuestFixture.region1Start - 8, 16)])
        expectBroken(fixture, with: .tooManySegments(limit: 2))
    }

    @Test func rejectsChainOfMoreThan4GiB() throws {
        // A sparse 4 GiB + 4 KiB region: mapped, never touched.
        let big: UInt64 = 0x1_0000_0000
        let fixture = try GuestFixture(regions: [
            GuestRAM.RegionSpec(guestPhysicalStart: gpa(0), size: 0x1_0000),
            GuestRAM.RegionSpec(guestPhysicalStart: gpa(big), size: Int(big) + 0x1000),
        ])
        try fixture.offerRaw([descriptor(big, UInt32.max, .next, next: 1), descriptor(big, 1, .next, next: 2), descriptor(big, 1, .write)])
        expectBroken(fixture, with: .chainByteCountTooLarge(limit: 1 << 32))
    }

    @Test func accepts4GiBChainExactly() throws {
        let big: UInt64 = 0x1_0000_0000
        let fixture = try GuestFixture(regions: [
            GuestRAM.RegionSpec(guestPhysicalStart: gpa(0), size: 0x1_0000),
            GuestRAM.RegionSpec(guestPhysicalStart: gpa(big), size: Int(big) + 0x1000),
        ])
        try fixture.offerRaw([descriptor(big, UInt32.max, .next, next: 1), descriptor(big, 1, .write)])
        let chain = try #require(try fixture.pop())
        #expect(chain.readableByteCount + chain.writableByteCount == 1 << 32)
    }

    @Test func brokenQueueStillCompletesChainsPoppedBefore() throws {
        let fixture = try GuestFixture()
        let good = try fixture.driver.addChain(readable: [(try fixture.buffer(16), 16)], writable: [(try fixture.buffer(1), 1)])
        fixture.driver.makeAvailable(head: 100)
        fixture.driver.publish()
        let chain = try #require(try fixture.pop())
        #expect(chain.headIndex == good)
        expectBroken(fixture, with: .descriptorIndexOutOfRange(index: 100, queueSize: 8))
        // Even a later well-formed chain is not processed.
        try fixture.driver.addChain(readable: [(try fixture.buffer(16), 16)])
        fixture.driver.publish()
        #expect(throws: VirtqueueError.descriptorIndexOutOfRange(index: 100, queueSize: 8)) { try fixture.pop() }
        fixture.device.pushUsed(head: good, writtenLength: 1)
        fixture.device.publishUsed()
        #expect(fixture.driver.takeUsed() == [.init(id: UInt32(good), length: 1)])
        #expect(fixture.device.nextAvailableIndex == 1)
    }

    @Test func headMadeAvailableAgainWhileOutstandingBreaksTheRing() throws {
        let fixture = try GuestFixture()
        let head = try fixture.driver.addChain(readable: [(try fixture.buffer(16), 16)], writable: [(try fixture.buffer(1), 1)])
        fixture.driver.publish()
        let chain = try #require(try fixture.pop())
        #expect(chain.headIndex == head)
        #expect(fixture.device.outstandingCount == 1)
        fixture.driver.makeAvailable(head: head)
        fixture.driver.publish()
        expectBroken(fixture, with: .headAlreadyOutstanding(head: head))
        // The one outstanding request still completes, once.
        let once = fixture.device.pushUsed(head: head, writtenLength: 1)
        let twice = fixture.device.pushUsed(head: head, writtenLength: 1)
        #expect(once && !twice)
        fixture.device.publishUsed()
        #expect(fixture.driver.takeUsed() == [.init(id: UInt32(head), length: 1)])
    }

    @Test func headUsedMayComeBackAndOnlyOutstandingHeadsAreUsed() throws {
        let fixture = try GuestFixture()
        // A completion for a head never popped writes nothing.
        let neverPopped = fixture.device.pushUsed(head: 3, writtenLength: 9)
        #expect(!neverPopped)
        #expect(fixture.device.unpublishedUsedCount == 0)
        let head = try fixture.driver.addChain(readable: [(try fixture.buffer(16), 16)])
        fixture.driver.publish()
        let first = try #require(try fixture.pop())
        let used = fixture.device.pushUsed(head: first.headIndex, writtenLength: 0)
        #expect(used)
        // Used, so the driver may offer it again: served, not refused.
        fixture.driver.makeAvailable(head: head)
        fixture.driver.publish()
        let again = try fixture.pop()
        #expect(again?.headIndex == head)
        #expect(!fixture.device.isBroken)
    }
}
