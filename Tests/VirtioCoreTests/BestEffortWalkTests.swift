#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore

/// Guest-physical translation that defers every buffer overlapping `forbidden`, as an IOMMU
/// does for a page it does not map.
private struct ForbiddingTranslator: DescriptorAddressTranslator {
    let memory: GuestMemory
    let forbidden: Range<UInt64>

    func pointer(_ address: GuestPhysicalAddress, length: Int) -> UnsafeMutableRawPointer? {
        overlaps(address, length) ? nil : memory.pointer(address, length: length)
    }

    func segments(_ address: GuestPhysicalAddress, length: Int,
                  into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        overlaps(address, length) ? .deferred : memory.segments(address, length: length, into: buffer)
    }

    private func overlaps(_ address: GuestPhysicalAddress, _ length: Int) -> Bool {
        address.rawValue < forbidden.upperBound && forbidden.lowerBound < address.rawValue + UInt64(length)
    }
}

@Suite("A request walked only to be failed")
struct BestEffortWalkTests {
    @Test("what faults becomes inaccessible: no iovecs, copies stop there; the header and a status byte of its own stay reachable")
    func faultingDataBuffer() throws {
        let fixture = try GuestFixture()
        let header = try fixture.buffer(16, fill: 7)
        let data = try fixture.buffer(4096, fill: 0xA5)
        let status = try fixture.buffer(1, fill: 0xEE)
        try fixture.driver.addChain(readable: [(header, 16)], writable: [(data, 4096), (status, 1)])
        fixture.driver.publish()
        let translator = ForbiddingTranslator(memory: fixture.memory, forbidden: data.rawValue..<data.rawValue + 4096)

        // The walk a request is served by stops: the request stays available.
        #expect(throws: VirtqueueError.translationDeferred(address: data.rawValue)) {
            try fixture.device.popAvailable(translator: translator)
        }
        #expect(fixture.device.nextAvailableIndex == 0)

        let chain = try #require(try fixture.device.popAvailable(translator: BestEffortTranslator(translator)))
        #expect(chain.writableByteCount == 4097)
        #expect(chain.writable.map(\.isAccessible) == [false, true])
        var iovecs = [iovec](repeating: iovec(), count: 8)
        #expect(iovecs.withUnsafeMutableBufferPointer { chain.fillIOVectors(.writable, offset: 0, length: 4097, into: $0) } == nil)
        let bytes = [UInt8](repeating: 1, count: 4097)
        #expect(bytes.withUnsafeBytes { chain.copyToWritableBytes(from: $0, at: 0) } == 0)
        var headerCopy = [UInt8](repeating: 0, count: 16)
        #expect(headerCopy.withUnsafeMutableBytes { chain.copyReadableBytes(into: $0) } == 16)
        var error: UInt8 = 1
        #expect(withUnsafeBytes(of: &error) { chain.copyToWritableBytes(from: $0, at: 4096) } == 1)
        #expect(try fixture.ram.read(1, at: status) == [1])
        #expect(try fixture.ram.read(4096, at: data) == [UInt8](repeating: 0xA5, count: 4096))
        #expect(fixture.device.nextAvailableIndex == 1)
    }

    @Test("a faulting buffer whose last byte translates keeps that byte, where the status goes")
    func lastByteOfAFaultingBuffer() throws {
        let fixture = try GuestFixture()
        let header = try fixture.buffer(16)
        let dataAndStatus = try fixture.buffer(513, fill: 0xA5)
        try fixture.driver.addChain(readable: [(header, 16)], writable: [(dataAndStatus, 513)])
        fixture.driver.publish()
        let translator = ForbiddingTranslator(memory: fixture.memory,
                                              forbidden: dataAndStatus.rawValue..<dataAndStatus.rawValue + 512)
        let chain = try #require(try fixture.device.popAvailable(translator: BestEffortTranslator(translator)))
        #expect(chain.writable.map(\.length) == [512, 1])
        let status = try #require(chain.lastWritableByte)
        status.storeBytes(of: 1, as: UInt8.self)
        #expect(try fixture.ram.read(513, at: dataAndStatus) == [UInt8](repeating: 0xA5, count: 512) + [1])
    }

    @Test("the ring's rules still apply: a readable buffer after a writable one breaks the ring")
    func ringRulesStillApply() throws {
        let fixture = try GuestFixture()
        let data = try fixture.buffer(512)
        let late = try fixture.buffer(16)
        try fixture.offerRaw([descriptor(data.rawValue, 512, [.write, .next], next: 1), descriptor(late.rawValue, 16)])
        let translator = ForbiddingTranslator(memory: fixture.memory, forbidden: data.rawValue..<data.rawValue + 512)
        #expect(throws: VirtqueueError.readableAfterWritable) {
            try fixture.device.popAvailable(translator: BestEffortTranslator(translator))
        }
        #expect(fixture.device.isBroken)
    }

    @Test("an indirect table that faults cannot be walked: the walk defers and the request stays available")
    func faultingIndirectTable() throws {
        let fixture = try GuestFixture()
        let status = try fixture.buffer(1)
        let table = try fixture.driver.writeIndirectTable([descriptor(status.rawValue, 1, .write)]).guestPhysicalAddress
        try fixture.offerRaw([descriptor(table.rawValue, 16, .indirect)])
        let translator = ForbiddingTranslator(memory: fixture.memory, forbidden: table.rawValue..<table.rawValue + 16)
        #expect(throws: VirtqueueError.translationDeferred(address: table.rawValue)) {
            try fixture.device.popAvailable(translator: BestEffortTranslator(translator))
        }
        #expect(fixture.device.nextAvailableIndex == 0)
        let discarded = try fixture.device.discardAvailable()
        #expect(discarded == 0)
        let used = fixture.device.pushUsed(head: 0, writtenLength: 0)
        #expect(used)
    }
}
