import Testing
import VhostUserFrontEnd
import VirtioCore
@testable import VirtioBlk

/// Well-formed requests of every type, served by the device's handler on real guest memory and
/// a real image file: the status byte, the used length and the bytes in the file.
@Suite("virtio-blk requests")
struct BlockRequestTests {
    /// Distinct bytes for data the driver writes (never equal to the image pattern throughout).
    static func data(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) ^ 0x5A }
    }

    // MARK: IN

    @Test func readFillsDataAcrossDescriptorsAndRegions() throws {
        let fixture = try BlockFixture()
        // Three sectors from sector 10: one buffer in region 0, one across the boundary into
        // region 1 (two host pieces), one in region 1.
        let buffers = [
            try fixture.buffer(BlockFixture.dataAddress, 512),
            try fixture.buffer(BlockFixture.region1Start - 0x100, 512),
            try fixture.buffer(BlockFixture.region1Start + 0x8000, 512),
        ]
        let used = try fixture.submit(readable: [try fixture.header(Request.read, sector: 10)],
                                      writable: buffers + [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 3 * 512 + 1)
        var received: [UInt8] = []
        for buffer in buffers { received += try fixture.ram.read(Int(buffer.length), at: buffer.address) }
        #expect(received == BlockFixture.pattern(offset: 10 * 512, count: 3 * 512))
        #expect(fixture.handler.statistics.reads == 1)
    }

    @Test func readThroughAnIndirectTableWithOddSizedPieces() throws {
        let fixture = try BlockFixture()
        // 1024 bytes in pieces of 100, 700 and 224 bytes; the status byte shares the last one.
        let pieces = [try fixture.buffer(0x6_0000, 100), try fixture.buffer(0x6_1000, 700), try fixture.buffer(0x6_2000, 225)]
        try fixture.ram.write([BlockFixture.statusSentinel], at: gpa(0x6_2000 + 224))
        let used = try fixture.submit(readable: [try fixture.header(Request.read, sector: 2046)],
                                      writable: pieces, indirect: true)
        #expect(try fixture.status(at: 0x6_2000 + 224) == Status.ok)
        #expect(used.length == 1025)
        let received = try fixture.ram.read(100, at: gpa(0x6_0000)) + fixture.ram.read(700, at: gpa(0x6_1000))
            + fixture.ram.read(224, at: gpa(0x6_2000))
        #expect(received == BlockFixture.pattern(offset: 2046 * 512, count: 1024))
    }

    /// A request whose data is more host pieces than preadv / pwritev take at once (IOV_MAX,
    /// 1024), within the device's largest queue (1024): 1022 data descriptors, four of them
    /// crossing from one memory region into the next (guest RAM made of small adjacent
    /// regions, as DIMMs can be), 1026 pieces in all.
    @Test(arguments: [Request.read, Request.write])
    func transferOfMoreThan1024PiecesCompletes(type: UInt32) throws {
        var regions = [BlockFixture.regions[0]]
        for index in 0..<4 {
            let start = BlockFixture.region1Start + UInt64(index) * 0x1000
            regions.append(GuestRAM.RegionSpec(guestPhysicalStart: gpa(start), size: 0x1000,
                                               frontEndVirtualStart: FrontEndVirtualAddress(0x7f80_0000_0000 + UInt64(index) * 0x10_0000)))
        }
        let fixture = try BlockFixture(queueSize: 1024, regions: regions)
        var pieces: [(address: GuestPhysicalAddress, length: UInt32)] = (0..<1018).map { (gpa(BlockFixture.dataAddress + UInt64($0)), 1) }
        for index in 0..<3 {
            pieces.append((gpa(BlockFixture.region1Start + UInt64(index) * 0x1000 - 1), 2))
        }
        pieces.append((gpa(BlockFixture.region1Start + 0x3000 - 256), 512))
        #expect(pieces.reduce(0) { $0 + Int($1.length) } == 1536)

        let used: DriverSplitQueue.UsedElement
        var expected = BlockFixture.pattern(offset: 0, count: BlockFixture.imageSize)
        let payload = Self.data(1536, seed: 77)
        if type == Request.read {
            used = try fixture.submit(readable: [try fixture.header(Request.read, sector: 20)],
                                      writable: pieces + [try fixture.statusBuffer()], indirect: true)
        } else {
            var position = 0
            for piece in pieces {
                try fixture.ram.write(Array(payload[position..<(position + Int(piece.length))]), at: piece.address)
                position += Int(piece.length)
            }
            used = try fixture.submit(readable: [try fixture.header(Request.write, sector: 20)] + pieces,
                                      writable: [try fixture.statusBuffer()], indirect: true)
            expected.replaceSubrange((20 * 512)..<(23 * 512), with: payload)
        }
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == (type == Request.read ? 1537 : 1))
        var received: [UInt8] = []
        for piece in pieces { received += try fixture.ram.read(Int(piece.length), at: piece.address) }
        // Compared outside #expect, which would print a megabyte on failure.
        let guestHoldsTheData = BlockFixture.sameBytes(received, Array(expected[(20 * 512)..<(23 * 512)]))
        let imageHoldsTheData = BlockFixture.sameBytes(fixture.imageBytes(offset: 0, count: BlockFixture.imageSize), expected)
        #expect(guestHoldsTheData)
        #expect(imageHoldsTheData)
    }

    // MARK: OUT

    @Test func writeLandsAtSectorTimes512AndLeavesNeighboursAlone() throws {
        let fixture = try BlockFixture()
        let payload = Self.data(1536, seed: 3)
        // 1000 bytes in region 0, 536 bytes across into region 1.
        try fixture.ram.write(Array(payload[0..<1000]), at: gpa(BlockFixture.dataAddress))
        try fixture.ram.write(Array(payload[1000...]), at: gpa(BlockFixture.region1Start - 200))
        let used = try fixture.submit(
            readable: [try fixture.header(Request.write, sector: 100), (gpa(BlockFixture.dataAddress), 1000),
                       (gpa(BlockFixture.region1Start - 200), 536)],
            writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 1)
        var expected = BlockFixture.pattern(offset: 0, count: BlockFixture.imageSize)
        expected.replaceSubrange((100 * 512)..<(103 * 512), with: payload)
        #expect(fixture.imageBytes(offset: 0, count: BlockFixture.imageSize) == expected)
        #expect(fixture.handler.statistics.writes == 1)
    }

    @Test func headerSplitAcrossDescriptorsAndSharingOneWithData() throws {
        let fixture = try BlockFixture()
        // Header bytes 0..<5 in one descriptor; bytes 5..<16 and the data in the next.
        let header = try fixture.header(Request.write, sector: 7)
        let headerBytes = try fixture.ram.read(16, at: header.address)
        let payload = Self.data(512, seed: 9)
        try fixture.ram.write(Array(headerBytes[5...]) + payload, at: gpa(0x7_0000))
        let used = try fixture.submit(readable: [(header.address, 5), (gpa(0x7_0000), 11 + 512)],
                                      writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 1)
        #expect(fixture.imageBytes(offset: 7 * 512, count: 512) == payload)
    }

    // MARK: FLUSH

    @Test func flushCompletesWithOK() throws {
        let fixture = try BlockFixture()
        let used = try fixture.submit(readable: [try fixture.header(Request.flush)], writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 1)
        #expect(fixture.handler.statistics.flushes == 1)
        #expect(fixture.imageIsUnchanged)
    }

    // MARK: GET_ID

    @Test func getIdentifierPadsTheSerialWithNULs() throws {
        let fixture = try BlockFixture(serial: "vublk-7")
        let buffer = try fixture.buffer(BlockFixture.dataAddress, 20, fill: 0xAA)
        let used = try fixture.submit(readable: [try fixture.header(Request.getIdentifier)],
                                      writable: [buffer, try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 21)
        #expect(try fixture.ram.read(20, at: buffer.address) == Array("vublk-7".utf8) + [UInt8](repeating: 0, count: 13))
    }

    @Test func getIdentifierOfExactly20BytesHasNoNUL() throws {
        let serial = "ABCDEFGHIJ0123456789"
        let fixture = try BlockFixture(serial: serial)
        let buffer = try fixture.buffer(BlockFixture.dataAddress, 20, fill: 0xAA)
        let used = try fixture.submit(readable: [try fixture.header(Request.getIdentifier)],
                                      writable: [buffer, try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 21)
        #expect(try fixture.ram.read(20, at: buffer.address) == Array(serial.utf8))
    }

    @Test func getIdentifierTruncatesALongerSerialTo20Bytes() throws {
        let fixture = try BlockFixture(serial: "ABCDEFGHIJ0123456789-and-more")
        let buffer = try fixture.buffer(BlockFixture.dataAddress, 20, fill: 0xAA)
        _ = try fixture.submit(readable: [try fixture.header(Request.getIdentifier)], writable: [buffer, try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(try fixture.ram.read(20, at: buffer.address) == Array("ABCDEFGHIJ0123456789".utf8))
    }

    @Test func getIdentifierIntoFewerThan20BytesIsAnIOError() throws {
        let fixture = try BlockFixture()
        let buffer = try fixture.buffer(BlockFixture.dataAddress, 19, fill: 0xAA)
        let used = try fixture.submit(readable: [try fixture.header(Request.getIdentifier)],
                                      writable: [buffer, try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ioError)
        #expect(used.length == 1)
        #expect(try fixture.ram.read(19, at: buffer.address) == [UInt8](repeating: 0xAA, count: 19))
    }

    // MARK: DISCARD and WRITE_ZEROES

    @Test(arguments: [Request.discard, Request.writeZeroes])
    func oneSegmentReadsBackZeroAndLeavesNeighboursAlone(type: UInt32) throws {
        let fixture = try BlockFixture()
        let used = try fixture.submit(readable: [try fixture.header(type), try fixture.segments([(64, 8, 0)])],
                                      writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 1)
        #expect(fixture.imageMatches(zeroedSectors: [64..<72]))
    }

    @Test(arguments: [Request.discard, Request.writeZeroes])
    func severalSegmentsAllReadBackZero(type: UInt32) throws {
        let fixture = try BlockFixture()
        // The last segment ends at the last sector of the disk; one segment is empty.
        let list: [(sector: UInt64, count: UInt32, flags: UInt32)] = [(3, 1, 0), (200, 16, 0), (1000, 0, 0), (2040, 8, 0)]
        let used = try fixture.submit(readable: [try fixture.header(type), try fixture.segments(list)],
                                      writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 1)
        #expect(fixture.imageMatches(zeroedSectors: [3..<4, 200..<216, 2040..<2048]))
        #expect(type == Request.discard ? fixture.handler.statistics.discards == 1 : fixture.handler.statistics.writeZeroes == 1)
    }

    @Test func writeZeroesAcceptsTheUnmapFlag() throws {
        let fixture = try BlockFixture()
        let list: [(sector: UInt64, count: UInt32, flags: UInt32)] = [(16, 8, 1), (40, 3, 0), (100, 9, 1)]
        let used = try fixture.submit(readable: [try fixture.header(Request.writeZeroes), try fixture.segments(list)],
                                      writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 1)
        #expect(fixture.imageMatches(zeroedSectors: [16..<24, 40..<43, 100..<109]))
    }

    @Test func segmentsMaySpanDescriptors() throws {
        let fixture = try BlockFixture()
        let list = try fixture.segments([(8, 8, 0), (32, 8, 0)])
        // 16 + 16 bytes of segments cut at byte 10 and byte 21.
        let used = try fixture.submit(
            readable: [try fixture.header(Request.writeZeroes), (list.address, 10),
                       (gpa(list.address.rawValue + 10), 11), (gpa(list.address.rawValue + 21), 11)],
            writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 1)
        #expect(fixture.imageMatches(zeroedSectors: [8..<16, 32..<40]))
    }

    // MARK: Unknown types

    /// SCSI_CMD (2), GET_LIFETIME (10), SECURE_ERASE (14), ZONE_APPEND (15), the legacy BARRIER
    /// flag on OUT, and nonsense.
    @Test(arguments: [UInt32(2), 10, 14, 15, 0x8000_0001, UInt32.max])
    func unknownTypeIsUnsupported(type: UInt32) throws {
        let fixture = try BlockFixture()
        let data = try fixture.buffer(BlockFixture.dataAddress, 512, fill: 0x11)
        let used = try fixture.submit(readable: [try fixture.header(type, sector: 1), data],
                                      writable: [try fixture.buffer(0x6_0000, 512, fill: 0x22), try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.unsupported)
        #expect(used.length == 1)
        #expect(try fixture.ram.read(512, at: gpa(0x6_0000)) == [UInt8](repeating: 0x22, count: 512))
        #expect(fixture.imageIsUnchanged)
        #expect(fixture.handler.statistics.unsupported == 1)
    }

    // MARK: Cache mode

    @Test func writethroughModeStillWritesAndIsReported() throws {
        let fixture = try BlockFixture()
        #expect(fixture.device.readConfiguration()[BlockDeviceConfiguration.writebackOffset] == 1)
        #expect(fixture.device.writeConfiguration(offset: 32, bytes: [0]))
        #expect(fixture.device.readConfiguration()[32] == 0)
        #expect(fixture.device.configuration.writeback == 0)

        let payload = Self.data(512, seed: 1)
        try fixture.ram.write(payload, at: gpa(BlockFixture.dataAddress))
        let used = try fixture.submit(readable: [try fixture.header(Request.write, sector: 5), (gpa(BlockFixture.dataAddress), 512)],
                                      writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        #expect(used.length == 1)
        #expect(fixture.imageBytes(offset: 5 * 512, count: 512) == payload)

        fixture.device.reset()
        #expect(fixture.device.readConfiguration()[32] == 1)
    }

    @Test func onlyTheWritebackByteIsWritableAndOnlyWith0Or1() throws {
        let fixture = try BlockFixture()
        #expect(!fixture.device.writeConfiguration(offset: 32, bytes: [2]))
        #expect(!fixture.device.writeConfiguration(offset: 32, bytes: [0, 0]))
        #expect(!fixture.device.writeConfiguration(offset: 0, bytes: [0]))
        #expect(!fixture.device.writeConfiguration(offset: 33, bytes: [0]))
        #expect(fixture.device.readConfiguration()[32] == 1)
        #expect(fixture.device.readConfiguration()[0..<8] == [0, 8, 0, 0, 0, 0, 0, 0])   // 2048 sectors
    }
}
