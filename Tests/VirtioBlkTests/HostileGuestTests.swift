#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import VhostTestSupport
import VhostUserFrontEnd
import VirtioCore
@testable import VirtioBlk

// The hostile-guest table: what a guest can put in a chain or a ring, what the device does, and
// the test that shows it. "Unchanged" means every byte of the image file still holds its initial
// pattern; "used len" is the used element's length; IOERR and UNSUPP are the status byte.
//
// Inside a well-formed chain (the request completes with a status, the queue goes on):
//
// | row | guest does                                              | device does                                   | test |
// |-----|---------------------------------------------------------|-----------------------------------------------|------|
// |  1  | header shorter than 16 bytes (0, 8, 15)                 | IOERR, used len 1, unchanged                  | headerShorterThan16BytesIsAnIOError |
// |  2  | no device-writable byte at all                          | nothing written, used len 0, malformed += 1   | chainWithoutWritableByteGetsNoStatus |
// |  3  | status descriptor without WRITE (OUT, FLUSH, GET_ID)    | same as row 2                                 | readOnlyStatusByteIsLikeNoStatus |
// |  4  | IN whose data buffer is device-readable                 | IOERR, used len 1, buffer untouched           | readIntoDeviceReadableBufferIsAnIOError |
// |  5  | OUT whose data buffer is device-writable                | IOERR, used len 1, unchanged                  | writeFromDeviceWritableBufferIsAnIOError |
// |  6  | IN/OUT sectors past the capacity: start at/past the     | IOERR, used len 1, unchanged, IN buffer       | transferPastTheCapacityIsAnIOError |
// |     | end, length crossing it, sector·512 overflowing 2^64    | untouched                                     |      |
// |  7  | IN/OUT data not a multiple of 512                       | IOERR, unchanged, IN buffer untouched         | transferNotAMultipleOf512IsAnIOError |
// |  8  | IN/OUT with zero bytes of data                          | IOERR, used len 1, unchanged                  | transferOfZeroBytesIsAnIOError |
// |  9  | zero-length descriptors (any address) inside the chain  | harmless: OK, the data moves                  | zeroLengthDescriptorsInsideAChainAreHarmless |
// | 10  | DISCARD with the unmap flag                             | UNSUPP, unchanged                             | discardWithUnmapIsUnsupported |
// | 11  | DISCARD/WRITE_ZEROES with unknown flag bits             | UNSUPP, unchanged                             | unknownSegmentFlagsAreUnsupported |
// | 12  | segment payload empty / not a multiple of 16 / more     | IOERR, unchanged                              | malformedSegmentListIsAnIOError |
// |     | than max_discard_seg (32) segments                      |                                               |      |
// | 13  | DISCARD/WRITE_ZEROES segment past the capacity          | IOERR, unchanged                              | segmentPastTheCapacityIsAnIOError |
// | 14  | only the last of several segments is bad (range, flag,  | IOERR / UNSUPP, no earlier segment applied    | badLastSegmentAppliesNoSegment |
// |     | unmap on DISCARD)                                       |                                               |      |
// | 15  | guest rewrites a segment while the request runs         | all segments applied or none                  | segmentsRewrittenDuringTheRequestApplyAllOrNothing |
// | 16  | OUT to a read-only device                               | IOERR, file unchanged                         | writeToReadOnlyDeviceIsAnIOError |
// | 17  | DISCARD/WRITE_ZEROES to a read-only device              | IOERR, file unchanged                         | discardOrZeroOnReadOnlyDeviceIsAnIOError |
//
// The ring itself (SplitQueue throws a VirtqueueError: the queue is broken, stays broken, the
// chain is not served, nothing after it is served, no used element, unchanged; each chain is
// otherwise a valid OUT of 512 bytes to sector 0):
//
// | row | guest does                                              | error                                         | test |
// |-----|---------------------------------------------------------|-----------------------------------------------|------|
// | 18  | descriptor loop                                         | chainTooLong                                  | descriptorLoopBreaksTheQueue |
// | 19  | more buffers than the queue size (direct + indirect)    | chainTooLong                                  | chainLongerThanTheQueueBreaksTheQueue |
// | 19b | ring smaller than the device's largest queue (32): an   | 32 buffers served; 33 buffers: chainTooLong;  | chainsUpToTheDeviceLimitAreServedBeyondItBreak |
// |     | indirect chain longer than the ring                     | a 33-entry table: indirectTableLengthInvalid  |      |
// | 20  | head or next index out of range                         | descriptorIndexOutOfRange                     | indexOutOfRangeBreaksTheQueue |
// | 21  | INDIRECT inside an indirect table                       | nestedIndirect                                | indirectInsideIndirectBreaksTheQueue |
// | 22  | indirect length 0 or not a multiple of 16               | indirectTableLengthInvalid                    | indirectLengthNotAMultipleOf16BreaksTheQueue |
// | 23  | address + length wrapping 2^64 (buffer, indirect table) | addressOverflow                               | addressWrappingBreaksTheQueue |
// | 24  | buffer straddling the end of a region (into a gap, or   | addressNotInGuestMemory                       | bufferStraddlingTheEndOfARegionBreaksTheQueue |
// |     | past the last region)                                   |                                               |      |
// | 25  | avail->idx moved by more than the queue size            | availableIndexJumped                          | availableIndexJumpBreaksTheQueue |
// | 26  | IN with a device-readable status after writable data    | readableAfterWritable                         | readableStatusAfterWritableDataBreaksTheQueue |
// | 27  | a broken chain between good ones                        | the one before completes; none after is served | chainsBeforeABrokenOneCompleteAndNoneAfterIsServed |
//
// Behind a vIOMMU (ACCESS_PLATFORM: every address is an IOVA; VhostUserBackendTests/IOMMUTests,
// real daemon code over a socketpair with an in-process front end answering MISSes):
//
// | row | guest does                                              | device does                                   | test |
// |-----|---------------------------------------------------------|-----------------------------------------------|------|
// | 28  | data buffer at an IOVA never mapped (MISS unanswered)   | IOERR after the miss bound, memory untouched, | "a MISS never answered fails that request |
// |     |                                                         | the queue works on                            | with IOERR after the bound; ..." |
// | 29  | IN into a read-only mapping / OUT from a write-only one | IOERR, memory untouched, "IOMMU permission    | "permission faults both ways fail the |
// |     | (permission faults)                                     | fault" logged, the queue works on             | request without touching memory" |
// | 30  | rings at IOVAs not mapped / invalidated while running   | the queue waits (MISS after a kick), resumes  | "rings not mapped at start wait ...", |
// |     |                                                         | in place once mapped                          | "an INVALIDATE covering a ring ..." |
//
// Rows 18–26 (not 19b) are also played against the real daemon binary (DaemonErrorEventTests,
// workerSignalsTheErrorEventFD): its QueueWorker signals the queue's error eventfd, serves
// nothing and leaves the image unchanged.
@Suite("hostile guest")
struct HostileGuestTests {
    typealias Buffer = (address: GuestPhysicalAddress, length: UInt32)

    /// The request completed with `status` and `usedLength`, and the image is unchanged.
    private func expectRejected(_ fixture: BlockFixture, _ used: DriverSplitQueue.UsedElement, status: UInt8,
                                usedLength: UInt32 = 1, statusAddress: UInt64 = BlockFixture.statusAddress,
                                sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try fixture.status(at: statusAddress) == status, sourceLocation: sourceLocation)
        #expect(used.length == usedLength, sourceLocation: sourceLocation)
        #expect(fixture.imageIsUnchanged, sourceLocation: sourceLocation)
        let statistics = fixture.handler.statistics
        #expect(status != Status.ioError || statistics.errors == 1, sourceLocation: sourceLocation)
        #expect(status != Status.unsupported || statistics.errors == 0, sourceLocation: sourceLocation)
    }

    // MARK: Rows 1–3: header and status

    @Test(arguments: [0, 8, 15])
    func headerShorterThan16BytesIsAnIOError(headerLength: UInt32) throws {
        let fixture = try BlockFixture()
        // An IN of sector 0 whose header was cut short: the device must not read on.
        let header = try fixture.header(Request.read, sector: 0, length: headerLength)
        let data = try fixture.buffer(BlockFixture.dataAddress, 512, fill: 0x33)
        let used = try fixture.submit(readable: headerLength == 0 ? [] : [header], writable: [data, try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.ioError)
        #expect(try fixture.ram.read(512, at: data.address) == [UInt8](repeating: 0x33, count: 512))
    }

    @Test func chainWithoutWritableByteGetsNoStatus() throws {
        let fixture = try BlockFixture()
        let data = try fixture.buffer(BlockFixture.dataAddress, 512, fill: 0x44)
        let used = try fixture.submit(readable: [try fixture.header(Request.write, sector: 3), data])
        #expect(used.length == 0)
        #expect(fixture.imageIsUnchanged)
        #expect(try fixture.ram.read(512, at: data.address) == [UInt8](repeating: 0x44, count: 512))
        #expect(fixture.handler.statistics.malformed == 1)
        #expect(fixture.handler.statistics.writes == 0)
    }

    @Test(arguments: [Request.write, Request.flush, Request.getIdentifier])
    func readOnlyStatusByteIsLikeNoStatus(type: UInt32) throws {
        let fixture = try BlockFixture()
        var readable = [try fixture.header(type, sector: 3)]
        if type == Request.write { readable.append(try fixture.buffer(BlockFixture.dataAddress, 512, fill: 0x44)) }
        readable.append(try fixture.statusBuffer())
        let used = try fixture.submit(readable: readable)
        #expect(used.length == 0)
        #expect(try fixture.status() == BlockFixture.statusSentinel)
        #expect(fixture.imageIsUnchanged)
        #expect(fixture.handler.statistics.malformed == 1)
    }

    // MARK: Rows 4–5: data in the wrong direction

    @Test func readIntoDeviceReadableBufferIsAnIOError() throws {
        let fixture = try BlockFixture()
        let data = try fixture.buffer(BlockFixture.dataAddress, 512, fill: 0x55)
        let used = try fixture.submit(readable: [try fixture.header(Request.read, sector: 1), data],
                                      writable: [try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.ioError)
        #expect(try fixture.ram.read(512, at: data.address) == [UInt8](repeating: 0x55, count: 512))
    }

    @Test func writeFromDeviceWritableBufferIsAnIOError() throws {
        let fixture = try BlockFixture()
        let data = try fixture.buffer(BlockFixture.dataAddress, 512, fill: 0x66)
        let used = try fixture.submit(readable: [try fixture.header(Request.write, sector: 1)],
                                      writable: [data, try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.ioError)
        #expect(try fixture.ram.read(512, at: data.address) == [UInt8](repeating: 0x66, count: 512))
    }

    // MARK: Rows 6–8: sector ranges and lengths

    /// (sector, sectors): start at the end, start past it, cross it, and sectors whose byte
    /// offset wraps 2^64 (2^55 + 10 sectors would be byte 5120 after the wrap).
    static let outOfRange: [(sector: UInt64, sectors: Int)] = [
        (2048, 1), (5000, 1), (2047, 2), (2040, 16), (UInt64.max, 1), (1 << 55, 1), ((1 << 55) + 10, 1),
        (UInt64.max >> 9, 1),
    ]

    @Test(arguments: [Request.read, Request.write], outOfRange)
    func transferPastTheCapacityIsAnIOError(type: UInt32, range: (sector: UInt64, sectors: Int)) throws {
        try expectTransferRejected(type: type, sector: range.sector, length: UInt32(range.sectors * 512))
    }

    @Test(arguments: [Request.read, Request.write], [UInt32(1), 511, 513, 1000])
    func transferNotAMultipleOf512IsAnIOError(type: UInt32, length: UInt32) throws {
        try expectTransferRejected(type: type, sector: 4, length: length)
    }

    @Test(arguments: [Request.read, Request.write])
    func transferOfZeroBytesIsAnIOError(type: UInt32) throws {
        try expectTransferRejected(type: type, sector: 4, length: 0)
    }

    /// An IN or OUT of `length` bytes at `sector` completes with IOERR, touches neither the image
    /// nor (IN) the guest's buffer.
    private func expectTransferRejected(type: UInt32, sector: UInt64, length: UInt32,
                                        sourceLocation: SourceLocation = #_sourceLocation) throws {
        let fixture = try BlockFixture()
        let data: [Buffer] = length == 0 ? [] : [try fixture.buffer(BlockFixture.dataAddress, length, fill: 0x77)]
        let header = try fixture.header(type, sector: sector)
        let used = type == Request.read
            ? try fixture.submit(readable: [header], writable: data + [try fixture.statusBuffer()])
            : try fixture.submit(readable: [header] + data, writable: [try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.ioError, sourceLocation: sourceLocation)
        if length > 0 {
            #expect(try fixture.ram.read(Int(length), at: gpa(BlockFixture.dataAddress)) == [UInt8](repeating: 0x77, count: Int(length)),
                    sourceLocation: sourceLocation)
        }
    }

    // MARK: Row 9: zero-length descriptors

    @Test func zeroLengthDescriptorsInsideAChainAreHarmless() throws {
        let fixture = try BlockFixture()
        // Zero-length buffers at addresses outside guest memory, one wrapping 2^64.
        let nowhere: Buffer = (gpa(0xdead_0000_0000), 0)
        let wrapping: Buffer = (gpa(UInt64.max), 0)
        let payload = BlockRequestTests.data(512, seed: 42)
        try fixture.ram.write(payload, at: gpa(BlockFixture.dataAddress))
        let written = try fixture.submit(
            readable: [try fixture.header(Request.write, sector: 9), nowhere, (gpa(BlockFixture.dataAddress), 512), wrapping],
            writable: [nowhere, try fixture.statusBuffer(), wrapping])
        #expect(try fixture.status() == Status.ok)
        #expect(written.length == 1)
        #expect(fixture.imageBytes(offset: 9 * 512, count: 512) == payload)

        let target = try fixture.buffer(0x6_0000, 512)
        let read = try fixture.submit(readable: [nowhere, try fixture.header(Request.read, sector: 9)],
                                      writable: [wrapping, target, nowhere, try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(read.length == 513)
        #expect(try fixture.ram.read(512, at: target.address) == payload)
    }

    // MARK: Rows 10–15: DISCARD and WRITE_ZEROES segments

    @Test func discardWithUnmapIsUnsupported() throws {
        let fixture = try BlockFixture()
        let used = try fixture.submit(readable: [try fixture.header(Request.discard), try fixture.segments([(8, 8, 1)])],
                                      writable: [try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.unsupported)
    }

    @Test(arguments: [Request.discard, Request.writeZeroes], [UInt32(2), 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF])
    func unknownSegmentFlagsAreUnsupported(type: UInt32, flags: UInt32) throws {
        let fixture = try BlockFixture()
        let used = try fixture.submit(readable: [try fixture.header(type), try fixture.segments([(8, 8, flags)])],
                                      writable: [try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.unsupported)
    }

    /// Payload lengths: none, not a multiple of 16, and 33 segments (max_discard_seg is 32).
    @Test(arguments: [Request.discard, Request.writeZeroes], [0, 8, 17, 24, 33 * 16])
    func malformedSegmentListIsAnIOError(type: UInt32, payloadLength: Int) throws {
        let fixture = try BlockFixture()
        let list = try fixture.segments((0..<34).map { (UInt64($0) * 2, 1, 0) })
        let payload: [Buffer] = payloadLength == 0 ? [] : [(list.address, UInt32(payloadLength))]
        let used = try fixture.submit(readable: [try fixture.header(type)] + payload, writable: [try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.ioError)
    }

    @Test func thirtyTwoSegmentsAreAccepted() throws {
        let fixture = try BlockFixture()
        let used = try fixture.submit(readable: [try fixture.header(Request.writeZeroes),
                                                 try fixture.segments((0..<32).map { (UInt64($0) * 2, 1, 0) })],
                                      writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 1)
        #expect(fixture.imageMatches(zeroedSectors: (0..<32).map { ($0 * 2)..<($0 * 2 + 1) }))
    }

    @Test(arguments: [Request.discard, Request.writeZeroes], outOfRange)
    func segmentPastTheCapacityIsAnIOError(type: UInt32, range: (sector: UInt64, sectors: Int)) throws {
        let fixture = try BlockFixture()
        let used = try fixture.submit(readable: [try fixture.header(type), try fixture.segments([(range.sector, UInt32(range.sectors), 0)])],
                                      writable: [try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.ioError)
    }

    /// (type, flags of the bad last segment, its sector, expected status).
    static let badLastSegments: [(type: UInt32, flags: UInt32, sector: UInt64, status: UInt8)] = [
        (Request.discard, 0, 2048, Status.ioError),
        (Request.writeZeroes, 0, UInt64.max, Status.ioError),
        (Request.discard, 4, 100, Status.unsupported),
        (Request.writeZeroes, 0x100, 100, Status.unsupported),
        (Request.discard, 1, 100, Status.unsupported),
    ]

    @Test(arguments: badLastSegments)
    func badLastSegmentAppliesNoSegment(row: (type: UInt32, flags: UInt32, sector: UInt64, status: UInt8)) throws {
        let fixture = try BlockFixture()
        var list: [(sector: UInt64, count: UInt32, flags: UInt32)] = (0..<7).map { (UInt64($0) * 16, 8, 0) }
        list.append((row.sector, 1, row.flags))
        let used = try fixture.submit(readable: [try fixture.header(row.type), try fixture.segments(list)],
                                      writable: [try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: row.status)
    }

    /// A guest thread keeps flipping the last segment's flags between 0 and an unknown bit while
    /// the device serves WRITE_ZEROES requests of 32 segments. The device must read each segment
    /// once: every request either zeroes all 32 ranges (it saw flags 0) or none (UNSUPP). A
    /// device that validates the segments and then reads them again to execute them can apply
    /// the first 31 and then answer UNSUPP. The race is not deterministic, so a broken device may
    /// pass a run by luck; a correct one never fails. The loop runs until both outcomes were seen
    /// a hundred times (the guest really raced the device), bounded by a request count, not a
    /// duration, so a slow machine only makes it take longer.
    @Test func segmentsRewrittenDuringTheRequestApplyAllOrNothing() throws {
        let fixture = try BlockFixture()
        let list = try fixture.segments((0..<32).map { (UInt64($0) * 2, 1, 0) })
        let lastFlags = try #require(fixture.ram.pointer(gpa(list.address.rawValue + 31 * 16 + 12), length: 4))
        let target = SharedPointer(lastFlags)
        let stop = StopFlag()
        let flipper = try TestThread {
            var value: UInt32 = 0
            while !stop.isSet {
                value ^= 2
                target.pointer.storeBytes(of: value, as: UInt32.self)
            }
        }
        defer {
            stop.set()
            flipper.join()
        }
        let zeroed = (0..<32).map { ($0 * 2)..<($0 * 2 + 1) }
        let original = BlockFixture.pattern(offset: 0, count: 64 * 512)
        var outcomes = (ok: 0, unsupported: 0)
        while min(outcomes.ok, outcomes.unsupported) < 100, outcomes.ok + outcomes.unsupported < 200_000 {
            _ = try fixture.submit(readable: [try fixture.header(Request.writeZeroes), list], writable: [try fixture.statusBuffer()])
            let status = try fixture.status()
            if status == Status.ok {
                outcomes.ok += 1
                try #require(fixture.imageMatches(zeroedSectors: zeroed), "OK but not every segment applied")
            } else {
                try #require(status == Status.unsupported)
                outcomes.unsupported += 1
                try #require(fixture.imageIsUnchanged, "UNSUPP after applying some segments")
            }
            // Back to the pattern for the next round.
            let restored = original.withUnsafeBytes { pwrite(fixture.image.descriptor.rawValue, $0.baseAddress, $0.count, 0) }
            try #require(restored == original.count)
        }
        // Both outcomes seen: the guest really raced the device.
        #expect(outcomes.ok >= 100 && outcomes.unsupported >= 100, "outcomes \(outcomes)")
    }

    // MARK: Rows 16–17: read-only device

    @Test func writeToReadOnlyDeviceIsAnIOError() throws {
        let fixture = try BlockFixture(readOnly: true)
        #expect(fixture.device.features.contains(.readOnly))
        try fixture.ram.write(BlockRequestTests.data(1024, seed: 5), at: gpa(BlockFixture.dataAddress))
        let used = try fixture.submit(readable: [try fixture.header(Request.write, sector: 0), (gpa(BlockFixture.dataAddress), 1024)],
                                      writable: [try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.ioError)

        // Reads, GET_ID and FLUSH still work.
        let target = try fixture.buffer(0x6_0000, 512)
        _ = try fixture.submit(readable: [try fixture.header(Request.read, sector: 1)], writable: [target, try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(try fixture.ram.read(512, at: target.address) == BlockFixture.pattern(offset: 512, count: 512))
        _ = try fixture.submit(readable: [try fixture.header(Request.flush)], writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
    }

    @Test(arguments: [Request.discard, Request.writeZeroes])
    func discardOrZeroOnReadOnlyDeviceIsAnIOError(type: UInt32) throws {
        let fixture = try BlockFixture(readOnly: true)
        #expect(!fixture.device.features.contains(.discard))
        #expect(!fixture.device.features.contains(.writeZeroes))
        let used = try fixture.submit(readable: [try fixture.header(type), try fixture.segments([(0, 8, 0), (100, 8, 0)])],
                                      writable: [try fixture.statusBuffer()])
        try expectRejected(fixture, used, status: Status.ioError)
    }

    // MARK: Rows 18–27: the ring

    /// Descriptors of a valid OUT of 512 bytes of 0x77 to sector 0 (header, data, status),
    /// chained from table index `first`, each with NEXT to the following index.
    private func outRequest(_ fixture: BlockFixture, first: UInt16 = 0) throws -> [SplitDescriptor] {
        _ = try fixture.header(Request.write, sector: 0)
        _ = try fixture.buffer(BlockFixture.dataAddress, 512, fill: 0x77)
        _ = try fixture.statusBuffer()
        return [
            SplitDescriptor(address: BlockFixture.headerAddress, length: 16, flags: .next, next: first + 1),
            SplitDescriptor(address: BlockFixture.dataAddress, length: 512, flags: .next, next: first + 2),
            SplitDescriptor(address: BlockFixture.statusAddress, length: 1, flags: .write),
        ]
    }

    /// Writes `descriptors` at table indices `first`, `first + 1`, ... and makes `head` available.
    private func offer(_ fixture: BlockFixture, _ descriptors: [SplitDescriptor], first: Int = 0, head: UInt16 = 0) throws {
        for (offset, descriptor) in descriptors.enumerated() {
            try fixture.driver.writeDescriptor(descriptor, at: first + offset)
        }
        fixture.driver.makeAvailable(head: head)
        fixture.driver.publish()
    }

    /// Serving breaks the queue with `error`: the queue stays broken at the same index, no used
    /// element appears, the status byte and the image are untouched.
    private func expectQueueBroken(_ fixture: BlockFixture, with error: VirtqueueError,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws {
        let index = fixture.queue.nextAvailableIndex
        #expect(fixture.serve() == error, sourceLocation: sourceLocation)
        #expect(fixture.queue.brokenReason == error, sourceLocation: sourceLocation)
        #expect(error.consequence == .queueBroken, sourceLocation: sourceLocation)
        #expect(fixture.serve() == error, sourceLocation: sourceLocation)
        #expect(fixture.queue.nextAvailableIndex == index, sourceLocation: sourceLocation)
        #expect(fixture.driver.takeUsed().isEmpty, sourceLocation: sourceLocation)
        #expect(try fixture.status() == BlockFixture.statusSentinel, sourceLocation: sourceLocation)
        #expect(fixture.imageIsUnchanged, sourceLocation: sourceLocation)
        #expect(fixture.handler.statistics.writes == 0, sourceLocation: sourceLocation)
    }

    @Test func descriptorLoopBreaksTheQueue() throws {
        let fixture = try BlockFixture()
        var chain = try outRequest(fixture)
        // The data descriptor points back at the header.
        chain[1].next = 0
        try offer(fixture, chain)
        try expectQueueBroken(fixture, with: .chainTooLong(limit: 16))
    }

    @Test func chainLongerThanTheQueueBreaksTheQueue() throws {
        let fixture = try BlockFixture()
        _ = try outRequest(fixture)
        // Header and two 32-byte data pieces direct, then an indirect table of 14 more pieces and
        // the status: 18 buffers, 512 bytes of data, in a queue of 16.
        let pieces = (0..<14).map {
            SplitDescriptor(address: BlockFixture.dataAddress + 64 + UInt64($0) * 32, length: 32, flags: .next, next: UInt16($0 + 1))
        }
        let table = try fixture.driver.writeIndirectTable(pieces + [SplitDescriptor(address: BlockFixture.statusAddress, length: 1, flags: .write)])
        try offer(fixture, [
            SplitDescriptor(address: BlockFixture.headerAddress, length: 16, flags: .next, next: 1),
            SplitDescriptor(address: BlockFixture.dataAddress, length: 32, flags: .next, next: 2),
            SplitDescriptor(address: BlockFixture.dataAddress + 32, length: 32, flags: .next, next: 3),
            SplitDescriptor(address: table.guestPhysicalAddress.rawValue, length: 15 * 16, flags: .indirect),
        ])
        try expectQueueBroken(fixture, with: .chainTooLong(limit: 16))
    }

    /// A ring of 16 on a device whose largest queue is 32 (seg_max 30): Linux puts a long request
    /// in one indirect table longer than the ring. 32 buffers are served; a 33rd (a direct
    /// header before a 32-entry table) breaks the queue, and so does a 33-entry table.
    @Test func chainsUpToTheDeviceLimitAreServedBeyondItBreak() throws {
        let payload = BlockRequestTests.data(31 * 512, seed: 11)
        /// Header, `pieces` data buffers of 512 bytes and the status, chained 0, 1, 2, ... as in
        /// an indirect table.
        func request(_ fixture: BlockFixture, pieces: Int) throws -> [SplitDescriptor] {
            try fixture.ram.write(payload, at: gpa(BlockFixture.dataAddress))
            _ = try fixture.header(Request.write, sector: 100)
            _ = try fixture.statusBuffer()
            let buffers = [SplitDescriptor(address: BlockFixture.headerAddress, length: 16)]
                + (0..<pieces).map { SplitDescriptor(address: BlockFixture.dataAddress + UInt64($0) * 512, length: 512) }
                + [SplitDescriptor(address: BlockFixture.statusAddress, length: 1, flags: .write)]
            return buffers.enumerated().map { index, buffer in
                var entry = buffer
                if index + 1 < buffers.count {
                    entry.flags.insert(.next)
                    entry.next = UInt16(index + 1)
                }
                return entry
            }
        }

        // 32 buffers in one table: served.
        let served = try BlockFixture(queueSize: 16, deviceQueueSize: 32)
        let table = try served.driver.writeIndirectTable(try request(served, pieces: 30))
        try offer(served, [SplitDescriptor(address: table.guestPhysicalAddress.rawValue, length: 32 * 16, flags: .indirect)])
        #expect(served.serve() == nil)
        #expect(served.driver.takeUsed().map(\.length) == [1])
        #expect(try served.status() == Status.ok)
        let landed = BlockFixture.sameBytes(served.imageBytes(offset: 100 * 512, count: 30 * 512), Array(payload.prefix(30 * 512)))
        #expect(landed)

        // A direct header, then a table of 31 data pieces and the status: 33 buffers.
        let tooLong = try BlockFixture(queueSize: 16, deviceQueueSize: 32)
        var buffers = try request(tooLong, pieces: 31)
        let header = buffers.removeFirst()
        buffers = buffers.map { var entry = $0; entry.next &-= 1; return entry }
        let longTable = try tooLong.driver.writeIndirectTable(buffers)
        try offer(tooLong, [header, SplitDescriptor(address: longTable.guestPhysicalAddress.rawValue, length: 32 * 16, flags: .indirect)])
        try expectQueueBroken(tooLong, with: .chainTooLong(limit: 32))

        // All 33 buffers in one table: the table is longer than the device allows.
        let tooLarge = try BlockFixture(queueSize: 16, deviceQueueSize: 32)
        let largeTable = try tooLarge.driver.writeIndirectTable(try request(tooLarge, pieces: 31))
        try offer(tooLarge, [SplitDescriptor(address: largeTable.guestPhysicalAddress.rawValue, length: 33 * 16, flags: .indirect)])
        try expectQueueBroken(tooLarge, with: .indirectTableLengthInvalid(length: 33 * 16))
    }

    @Test(arguments: [UInt16(16), 0xFFFF])
    func indexOutOfRangeBreaksTheQueue(index: UInt16) throws {
        let next = try BlockFixture()
        var chain = try outRequest(next)
        chain[1].next = index
        try offer(next, chain)
        try expectQueueBroken(next, with: .descriptorIndexOutOfRange(index: index, queueSize: 16))

        let head = try BlockFixture()
        try offer(head, try outRequest(head), head: index)
        try expectQueueBroken(head, with: .descriptorIndexOutOfRange(index: index, queueSize: 16))
    }

    @Test func indirectInsideIndirectBreaksTheQueue() throws {
        let fixture = try BlockFixture()
        let request = try outRequest(fixture)
        let inner = try fixture.driver.writeIndirectTable([request[2]])
        var outer = request
        outer[2] = SplitDescriptor(address: inner.guestPhysicalAddress.rawValue, length: 16, flags: .indirect)
        let table = try fixture.driver.writeIndirectTable(outer)
        try offer(fixture, [SplitDescriptor(address: table.guestPhysicalAddress.rawValue, length: 48, flags: .indirect)])
        try expectQueueBroken(fixture, with: .nestedIndirect)
    }

    @Test(arguments: [UInt32(0), 8, 40, 47])
    func indirectLengthNotAMultipleOf16BreaksTheQueue(length: UInt32) throws {
        let fixture = try BlockFixture()
        let table = try fixture.driver.writeIndirectTable(try outRequest(fixture))
        try offer(fixture, [SplitDescriptor(address: table.guestPhysicalAddress.rawValue, length: length, flags: .indirect)])
        try expectQueueBroken(fixture, with: .indirectTableLengthInvalid(length: length))
    }

    @Test func addressWrappingBreaksTheQueue() throws {
        let buffer = try BlockFixture()
        var chain = try outRequest(buffer)
        chain[1].address = UInt64.max - 255
        try offer(buffer, chain)
        try expectQueueBroken(buffer, with: .addressOverflow(address: UInt64.max - 255, length: 512))

        let table = try BlockFixture()
        _ = try outRequest(table)
        try offer(table, [SplitDescriptor(address: UInt64.max - 15, length: 48, flags: .indirect)])
        try expectQueueBroken(table, with: .addressOverflow(address: UInt64.max - 15, length: 48))
    }

    /// The end of region 1 (a gap follows) and the end of region 2 (nothing follows).
    @Test(arguments: [BlockFixture.gapStart - 256, BlockFixture.region2Start + UInt64(BlockFixture.region2Size) - 256])
    func bufferStraddlingTheEndOfARegionBreaksTheQueue(address: UInt64) throws {
        let fixture = try BlockFixture()
        var chain = try outRequest(fixture)
        chain[1].address = address
        try offer(fixture, chain)
        try expectQueueBroken(fixture, with: .addressNotInGuestMemory(address: address, length: 512))
    }

    @Test func availableIndexJumpBreaksTheQueue() throws {
        let fixture = try BlockFixture()
        try offer(fixture, try outRequest(fixture))
        fixture.driver.setAvailableIndex(17)
        try expectQueueBroken(fixture, with: .availableIndexJumped(previous: 0, current: 17, queueSize: 16))
    }

    @Test func readableStatusAfterWritableDataBreaksTheQueue() throws {
        let fixture = try BlockFixture()
        let target = try fixture.buffer(0x6_0000, 512, fill: 0x12)
        _ = try fixture.header(Request.read, sector: 0)
        _ = try fixture.statusBuffer()
        try offer(fixture, [
            SplitDescriptor(address: BlockFixture.headerAddress, length: 16, flags: .next, next: 1),
            SplitDescriptor(address: target.address.rawValue, length: 512, flags: [.write, .next], next: 2),
            SplitDescriptor(address: BlockFixture.statusAddress, length: 1),
        ])
        try expectQueueBroken(fixture, with: .readableAfterWritable)
        #expect(try fixture.ram.read(512, at: target.address) == [UInt8](repeating: 0x12, count: 512))
    }

    @Test func chainsBeforeABrokenOneCompleteAndNoneAfterIsServed() throws {
        let fixture = try BlockFixture()
        // Ring order: head 0, a FLUSH; head 2, an OUT whose data descriptor loops back to itself;
        // head 5, a valid OUT.
        _ = try fixture.header(Request.flush, at: 0x4_0800)
        _ = try fixture.statusBuffer(at: 0x4_1800)
        try offer(fixture, [SplitDescriptor(address: 0x4_0800, length: 16, flags: .next, next: 1),
                            SplitDescriptor(address: 0x4_1800, length: 1, flags: .write)], first: 0, head: 0)
        var looping = try outRequest(fixture, first: 2)
        looping[1].next = 3
        try offer(fixture, looping, first: 2, head: 2)
        try offer(fixture, try outRequest(fixture, first: 5), first: 5, head: 5)

        #expect(fixture.serve() == .chainTooLong(limit: 16))
        #expect(fixture.driver.takeUsed() == [DriverSplitQueue.UsedElement(id: 0, length: 1)])
        #expect(try fixture.status(at: 0x4_1800) == Status.ok)
        #expect(fixture.queue.nextAvailableIndex == 1)
        #expect(fixture.serve() == .chainTooLong(limit: 16))
        #expect(fixture.driver.takeUsed().isEmpty)
        #expect(try fixture.status() == BlockFixture.statusSentinel)
        #expect(fixture.imageIsUnchanged)
        #expect(fixture.handler.statistics.flushes == 1)
        #expect(fixture.handler.statistics.writes == 0)
    }
}

/// A pointer into guest memory handed to the scribbling thread (it stays mapped while the
/// fixture lives, which outlives the thread).
struct SharedPointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}

/// Tells a test thread to stop.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}
