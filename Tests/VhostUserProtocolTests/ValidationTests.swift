import Testing
import VhostUserProtocol
import VirtioSpec

/// The fixtures whose payload length is fixed by the request (everything but the opaque
/// crypto session).
let sizedFixtures = qemuFixtures.filter { $0.expected.request != .createCryptoSession }

/// Re-frames `fixture` with `payload` instead of its own, keeping request and flags.
func reframed(_ fixture: Fixture, payload: [UInt8]) -> [UInt8] {
    Array(fixture.bytes[0..<8]) + le32(UInt32(payload.count)) + payload
}

func payloadOf(_ fixture: Fixture) -> [UInt8] {
    Array(fixture.bytes.dropFirst(12))
}

func region(_ gpa: UInt64, _ size: UInt64, _ uva: UInt64, _ offset: UInt64 = 0) -> [UInt8] {
    le64(gpa) + le64(size) + le64(uva) + le64(offset)
}

func memTable(_ regions: [[UInt8]], count: UInt32? = nil) -> [UInt8] {
    message(5, payload: le32(count ?? UInt32(regions.count)) + le32(0) + regions.flatMap { $0 })
}

func configMessage(_ request: UInt32 = 24, offset: UInt32, size: UInt32, flags: UInt32 = 0, dataCount: Int? = nil) -> [UInt8] {
    message(request, payload: le32(offset) + le32(size) + le32(flags) + [UInt8](repeating: 0, count: dataCount ?? Int(size)))
}

func iotlb(iova: UInt64, size: UInt64, uaddr: UInt64, perm: UInt8, type: UInt8) -> [UInt8] {
    message(22, flags: 0x9, payload: le64(iova) + le64(size) + le64(uaddr) + [perm, type, 0, 0, 0, 0, 0, 0])
}

func vringState(_ request: UInt32, index: UInt32, num: UInt32) -> [UInt8] {
    message(request, payload: le32(index) + le32(num))
}

@Suite("Framing and request code")
struct FramingValidationTests {
    @Test func rejectsReplyFlagOnARequest() {
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(message(1, flags: 0x5)) }
        #expect(error == .replyFlagOnRequest(flags: 0x5))
    }

    @Test(arguments: [UInt32(0), 45, 100, UInt32.max])
    func rejectsUnknownRequestCode(code: UInt32) {
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(message(code)) }
        #expect(error == .unknownRequest(code))
    }

    @Test func rejectsPayloadWhoseLengthDiffersFromTheHeader() {
        let header = MessageHeader(request: 8, flags: .version1, size: 8)
        let error = thrownError { () throws(ProtocolError) in
            try parsePayload([0, 0, 0, 0]) { payload throws(ProtocolError) in
                try MessageDecoder.decode(header: header, payload: payload, fileDescriptorCount: 0, context: permissiveContext)
            }
        }
        #expect(error == .payloadSizeMismatchesHeader(headerSize: 8, actual: 4))
    }

    @Test func revalidatesAHeaderBuiltByHand() {
        let header = MessageHeader(request: 1, flags: MessageFlags(rawValue: 0x2), size: 0)
        let error = thrownError { () throws(ProtocolError) in
            try parsePayload([]) { payload throws(ProtocolError) in
                try MessageDecoder.decode(header: header, payload: payload, fileDescriptorCount: 0, context: permissiveContext)
            }
        }
        #expect(error == .badVersion(flags: 0x2))
    }

    @Test func reportsTheEarliestBrokenRuleFirst() {
        // Wrong size, wrong fd count, index out of range and ungated all at once: size wins.
        let context = DecodingContext(queueCount: 1)
        let tooLong = message(18, payload: le32(5) + le32(1) + [0])
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(tooLong, fds: 3, context: context) }
            == .wrongPayloadSize(request: .setVringEnable, expected: 8, actual: 9))
        // Right size: the fd count comes next.
        let rightSize = vringState(18, index: 5, num: 1)
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(rightSize, fds: 3, context: context) }
            == .wrongFileDescriptorCount(request: .setVringEnable, expected: 0...0, actual: 3))
        // Right fds: then the queue index.
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(rightSize, context: context) }
            == .queueIndexOutOfRange(index: 5, count: 1))
        // Valid index: finally the feature gate.
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(vringState(18, index: 0, num: 1), context: context) }
            == .featureNotNegotiated(request: .setVringEnable, missing: .protocolFeaturesOffered))
    }
}

@Suite("Payload sizes")
struct PayloadSizeValidationTests {
    @Test("rejects a payload one byte too long", arguments: sizedFixtures)
    func rejectsPayloadOneByteTooLong(_ fixture: Fixture) {
        let payload = payloadOf(fixture)
        let error = thrownError { () throws(ProtocolError) in
            try decodeMessage(reframed(fixture, payload: payload + [0]), fds: fixture.fds)
        }
        #expect(error == .wrongPayloadSize(request: fixture.expected.request, expected: payload.count, actual: payload.count + 1))
    }

    @Test("rejects a payload one byte too short", arguments: sizedFixtures.filter { $0.bytes.count > 12 })
    func rejectsPayloadOneByteTooShort(_ fixture: Fixture) {
        let payload = payloadOf(fixture)
        let error = thrownError { () throws(ProtocolError) in
            try decodeMessage(reframed(fixture, payload: Array(payload.dropLast())), fds: fixture.fds)
        }
        #expect(error == .wrongPayloadSize(request: fixture.expected.request, expected: payload.count, actual: payload.count - 1))
    }

    @Test func rejectsMemoryTablePaddedToEightRegions() {
        // The C struct has room for 8 regions; QEMU sends only the ones in use, and so do we.
        let bytes = memTable([lowRAMBytes, highRAMBytes] + Array(repeating: [UInt8](repeating: 0, count: 32), count: 6), count: 2)
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 2) }
        #expect(error == .wrongPayloadSize(request: .setMemTable, expected: 72, actual: 264))
    }

    @Test func rejectsMemoryTableTooShortForItsCount() {
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(message(5, payload: [1, 0, 0])) }
        #expect(error == .wrongPayloadSize(request: .setMemTable, expected: 40, actual: 3))
    }

    @Test func rejectsMemoryTableWithAHugeRegionCountWithoutTrapping() {
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(memTable([], count: .max)) }
        #expect(error == .wrongPayloadSize(request: .setMemTable, expected: 8 + 32 * Int(UInt32.max), actual: 8))
    }

    @Test func rejectsConfigPayloadShorterThanItsPrefix() {
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(message(24, payload: [0, 0, 0, 0, 1])) }
        #expect(error == .wrongPayloadSize(request: .getConfig, expected: 13, actual: 5))
    }

    @Test func rejectsConfigPayloadLongerThanItsSizeField() {
        let error = thrownError { () throws(ProtocolError) in
            try decodeMessage(configMessage(25, offset: 0, size: 4, dataCount: 8))
        }
        #expect(error == .wrongPayloadSize(request: .setConfig, expected: 16, actual: 20))
    }
}

@Suite("File descriptor counts")
struct FileDescriptorValidationTests {
    @Test("rejects one fd more than allowed", arguments: qemuFixtures)
    func rejectsOneFileDescriptorTooMany(_ fixture: Fixture) {
        let allowed = MessageDecoder.requiredFileDescriptorCount(for: fixture.expected)
        let error = thrownError { () throws(ProtocolError) in
            try decodeMessage(fixture.bytes, fds: allowed.upperBound + 1)
        }
        #expect(error == .wrongFileDescriptorCount(request: fixture.expected.request, expected: allowed, actual: allowed.upperBound + 1))
    }

    @Test("rejects one fd fewer than required", arguments: qemuFixtures.filter { $0.fds > 0 })
    func rejectsOneFileDescriptorTooFew(_ fixture: Fixture) {
        let allowed = MessageDecoder.requiredFileDescriptorCount(for: fixture.expected)
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(fixture.bytes, fds: fixture.fds - 1) }
        #expect(error == .wrongFileDescriptorCount(request: fixture.expected.request, expected: allowed, actual: fixture.fds - 1))
    }

    @Test func requiresOneFileDescriptorPerMemoryTableRegion() throws {
        let bytes = memTable([lowRAMBytes, highRAMBytes])
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 1) }
            == .wrongFileDescriptorCount(request: .setMemTable, expected: 2...2, actual: 1))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 3) }
            == .wrongFileDescriptorCount(request: .setMemTable, expected: 2...2, actual: 3))
        #expect(try decodeMessage(bytes, fds: 2) == .setMemTable(try MemoryTableDescription(regions: [lowRAM, highRAM])))
    }

    @Test func vringFileIndexWithoutTheNoFdBitNeedsAnFd() {
        let bytes = message(12, payload: le64(0))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 0) }
            == .wrongFileDescriptorCount(request: .setVringKick, expected: 1...1, actual: 0))
    }

    @Test func vringFileIndexWithTheNoFdBitTakesNoFd() {
        let bytes = message(13, payload: le64(0x100))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 1) }
            == .wrongFileDescriptorCount(request: .setVringCall, expected: 0...0, actual: 1))
    }

    @Test func removeMemoryRegionTakesAtMostOneFd() {
        let bytes = message(38, payload: le64(0) + lowRAMBytes)
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 2) }
            == .wrongFileDescriptorCount(request: .remMemReg, expected: 0...1, actual: 2))
    }
}

@Suite("Vring requests")
struct VringValidationTests {
    static let vringFixtures = qemuFixtures.filter { $0.expected.vringIndex != nil }

    @Test("rejects a vring index at the queue count", arguments: vringFixtures)
    func rejectsQueueIndexOutOfRange(_ fixture: Fixture) throws {
        let index = try #require(fixture.expected.vringIndex)
        var context = permissiveContext
        context.queueCount = index
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(fixture.bytes, fds: fixture.fds, context: context) }
        #expect(error == .queueIndexOutOfRange(index: index, count: index))
    }

    @Test func everyVringRequestIsIndexChecked() {
        let checked = Set(Self.vringFixtures.map(\.expected.request))
        #expect(checked == [
            .setVringNum, .setVringAddr, .setVringBase, .getVringBase, .setVringKick, .setVringCall,
            .setVringErr, .setVringEnable, .setVringEndian, .vringKick,
        ])
    }

    @Test(arguments: [UInt64(0x200), 0x1_0000, 0x8000_0000_0000_0000, 0x5FF] as [UInt64])
    func rejectsVringFileIndexWithReservedBits(value: UInt64) {
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(message(14, payload: le64(value)), fds: 1) }
        #expect(error == .reservedVringFileBits(value))
    }

    @Test func rejectsVringAddressFlagsOtherThanLog() {
        let bytes = message(9, payload: le32(0) + le32(0x3) + le64(0x1000) + le64(0x2000) + le64(0x3000) + le64(0))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes) } == .invalidVringAddressFlags(0x3))
    }

    @Test(arguments: [UInt32(0), 3, 100, 32769, 65536, UInt32.max])
    func rejectsSplitQueueSizeThatIsZeroTooLargeOrNotAPowerOfTwo(num: UInt32) {
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(vringState(8, index: 0, num: num)) }
        #expect(error == .invalidQueueSize(num))
    }

    @Test(arguments: [UInt32(1), 2, 256, 1024, 32768])
    func acceptsSplitQueueSizeThatIsAPowerOfTwo(num: UInt32) throws {
        #expect(try decodeMessage(vringState(8, index: 0, num: num)) == .setVringNum(VringState(index: 0, num: num)))
    }

    @Test func packedQueueSizeNeedNotBeAPowerOfTwoButIsStillBounded() throws {
        var context = permissiveContext
        context.negotiatedFeatures.insert(.ringPacked)
        #expect(try decodeMessage(vringState(8, index: 0, num: 100), context: context) == .setVringNum(VringState(index: 0, num: 100)))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(vringState(8, index: 0, num: 32769), context: context) }
            == .invalidQueueSize(32769))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(vringState(8, index: 0, num: 0), context: context) }
            == .invalidQueueSize(0))
    }

    @Test func rejectsSplitRingBaseWithReservedUpperBits() {
        let error = thrownError { () throws(ProtocolError) in try decodeMessage(vringState(10, index: 0, num: 0x1_0000)) }
        #expect(error == .invalidVringBase(0x1_0000))
    }

    @Test func acceptsPackedRingBaseWithWrapCountersAndUsedIndex() throws {
        var context = permissiveContext
        context.negotiatedFeatures.insert(.ringPacked)
        let num: UInt32 = 0x8005_8003  // used wrap | used 5 | avail wrap | avail 3
        #expect(try decodeMessage(vringState(10, index: 0, num: num), context: context) == .setVringBase(VringState(index: 0, num: num)))
    }

    @Test func rejectsVringEnableOtherThanZeroOrOne() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(vringState(18, index: 0, num: 2)) } == .invalidVringEnable(2))
    }

    @Test func rejectsVringEndianOtherThanZeroOrOne() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(vringState(23, index: 0, num: 2)) } == .invalidVringEndian(2))
    }
}

@Suite("Memory regions")
struct MemoryValidationTests {
    @Test func rejectsRegionsOverlappingInGuestPhysicalSpace() {
        let bytes = memTable([region(0x1000, 0x2000, 0x10_0000), region(0x2000, 0x1000, 0x20_0000)])
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 2) } == .memoryRegionOverlap(.guestPhysical))
    }

    @Test func rejectsRegionsOverlappingInUserSpace() {
        let bytes = memTable([region(0x0, 0x1000, 0x10_0000), region(0x10_0000, 0x1000, 0x10_0800)])
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 2) } == .memoryRegionOverlap(.frontEndVirtual))
    }

    @Test func rejectsRegionContainedInAnother() {
        let bytes = memTable([region(0x0, 0x10_0000, 0x7000_0000), region(0x1000, 0x1000, 0x8000_0000)])
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 2) } == .memoryRegionOverlap(.guestPhysical))
    }

    @Test func acceptsAdjacentRegions() throws {
        let bytes = memTable([region(0x0, 0x1000, 0x7000_0000), region(0x1000, 0x1000, 0x7000_1000, 0x1000)])
        let expected = try MemoryTableDescription(regions: [
            try MemoryRegionDescription(guestPhysicalAddress: 0, size: 0x1000, userAddress: 0x7000_0000, mmapOffset: 0),
            try MemoryRegionDescription(guestPhysicalAddress: 0x1000, size: 0x1000, userAddress: 0x7000_1000, mmapOffset: 0x1000),
        ])
        #expect(try decodeMessage(bytes, fds: 2) == .setMemTable(expected))
    }

    @Test func rejectsZeroSizeRegionInMemoryTable() {
        let bytes = memTable([region(0x0, 0, 0x7000_0000)])
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 1) } == .memoryRegionEmpty)
    }

    @Test func rejectsZeroSizeRegionInAddMemReg() {
        let bytes = message(37, payload: le64(0) + region(0x0, 0, 0x7000_0000))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 1) } == .memoryRegionEmpty)
    }

    @Test func rejectsGuestPhysicalRangeWrappingAtUInt64Max() {
        let bytes = memTable([region(.max, 1, 0x7000_0000)])
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 1) }
            == .addressOverflow(.guestPhysical, start: .max, size: 1))
    }

    @Test func rejectsUserRangeEndingExactlyAtTwoToThe64() {
        let start: UInt64 = 0xFFFF_FFFF_FFFF_F000
        let bytes = memTable([region(0x0, 0x1000, start)])
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 1) }
            == .addressOverflow(.frontEndVirtual, start: start, size: 0x1000))
    }

    @Test func rejectsMmapOffsetRangeWrapping() {
        let bytes = message(37, payload: le64(0) + region(0x0, 0x2000, 0x7000_0000, .max - 0xFFF))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 1) }
            == .addressOverflow(.fileOffset, start: .max - 0xFFF, size: 0x2000))
    }

    @Test func acceptsRangeEndingJustBelowTwoToThe64() throws {
        let bytes = memTable([region(0xFFFF_FFFF_FFFF_E000, 0x1FFF, 0x7000_0000)])
        let expected = try MemoryRegionDescription(guestPhysicalAddress: 0xFFFF_FFFF_FFFF_E000, size: 0x1FFF,
                                                   userAddress: 0x7000_0000, mmapOffset: 0)
        #expect(try decodeMessage(bytes, fds: 1) == .setMemTable(try MemoryTableDescription(regions: [expected])))
    }

    @Test func rejectsMoreThanEightRegions() {
        let regions = (0..<9).map { region(UInt64($0) << 20, 0x1000, 0x7000_0000 + (UInt64($0) << 20)) }
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(memTable(regions), fds: 9) } == .tooManyRegions(count: 9, limit: 8))
    }

    @Test func rejectsMemoryTableWithoutRegions() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(memTable([])) } == .noMemoryRegions)
    }

    @Test func rejectsMoreRegionsThanTheBackEndHasSlots() {
        var context = permissiveContext
        context.maximumMemorySlots = 1
        let bytes = memTable([lowRAMBytes, highRAMBytes])
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, fds: 2, context: context) } == .tooManyRegions(count: 2, limit: 1))
    }

    @Test func memoryTableConstructorRejectsWhatTheParserRejects() {
        #expect(thrownError { () throws(ProtocolError) in try MemoryTableDescription(regions: []) } == .noMemoryRegions)
        #expect(thrownError { () throws(ProtocolError) in try MemoryTableDescription(regions: Array(repeating: lowRAM, count: 9)) }
            == .tooManyRegions(count: 9, limit: 8))
        #expect(thrownError { () throws(ProtocolError) in try MemoryTableDescription(regions: [lowRAM, lowRAM]) }
            == .memoryRegionOverlap(.guestPhysical))
    }
}

@Suite("Config, IOTLB, status, features and device state")
struct PayloadValidationTests {
    @Test func rejectsConfigAccessPastTheEndOfConfigSpace() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(configMessage(offset: 250, size: 7)) }
            == .invalidConfigAccess(offset: 250, size: 7))
    }

    @Test func rejectsConfigAccessOfZeroBytes() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(configMessage(offset: 0, size: 0)) }
            == .invalidConfigAccess(offset: 0, size: 0))
    }

    @Test func rejectsConfigAccessLargerThan256Bytes() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(configMessage(25, offset: 0, size: 257)) }
            == .invalidConfigAccess(offset: 0, size: 257))
    }

    @Test func rejectsConfigOffsetThatWrapsWhenAddedToSize() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(configMessage(offset: .max, size: 1)) }
            == .invalidConfigAccess(offset: .max, size: 1))
    }

    @Test func rejectsConfigFlagsOtherThanFrontEndOrMigration() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(configMessage(25, offset: 32, size: 1, flags: 2)) }
            == .invalidConfigFlags(2))
    }

    @Test func acceptsConfigAccessEndingAtByte256() throws {
        #expect(try decodeMessage(configMessage(offset: 255, size: 1)) == .getConfig(try ConfigAccess.read(offset: 255, size: 1)))
        #expect(try decodeMessage(configMessage(offset: 0, size: 256)) == .getConfig(try ConfigAccess.read(offset: 0, size: 256)))
    }

    @Test(arguments: [UInt8(0), 7, 0xFF])
    func rejectsIOTLBMessageType(type: UInt8) {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(iotlb(iova: 0, size: 1, uaddr: 0, perm: 1, type: type)) }
            == .invalidIOTLBType(type))
    }

    @Test(arguments: [UInt8(4), 0x80, 0xFF])
    func rejectsIOTLBPermission(perm: UInt8) {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(iotlb(iova: 0, size: 1, uaddr: 0, perm: perm, type: 2)) }
            == .invalidIOTLBPermission(perm))
    }

    /// QEMU 7.2 fills only iova, size and type of an INVALIDATE; perm and uaddr are whatever
    /// was on its stack (perm 7 and uaddr 0x1ff00000 seen from a real guest).
    @Test(arguments: [UInt8(0), 7, 0xFF])
    func acceptsInvalidateWithUninitialisedPermissionAndAddress(perm: UInt8) throws {
        let decoded = try decodeMessage(iotlb(iova: 0xfffd_3000, size: 0x1000, uaddr: 0x1ff0_0000, perm: perm, type: 3))
        #expect(decoded == .iotlbMsg(IOTLBMessage(iova: 0xfffd_3000, size: 0x1000, userAddress: 0, permission: .none,
                                                  type: .invalidate)))
    }

    @Test(arguments: [IOTLBMessageType.miss, .accessFail, .batchBegin, .batchEnd])
    func rejectsIOTLBTypesTheFrontEndDoesNotSend(type: IOTLBMessageType) {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(iotlb(iova: 0x1000, size: 0x1000, uaddr: 0, perm: 1, type: type.rawValue)) }
            == .unexpectedIOTLBMessageType(type))
    }

    @Test func rejectsEmptyIOTLBUpdate() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(iotlb(iova: 0x1000, size: 0, uaddr: 0x7000, perm: 3, type: 2)) }
            == .emptyIOTLBUpdate)
    }

    @Test func rejectsIOTLBUpdateWrappingPastTwoToThe64() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(iotlb(iova: .max - 0xFFF, size: 0x2000, uaddr: 0, perm: 3, type: 2)) }
            == .addressOverflow(.ioVirtual, start: .max - 0xFFF, size: 0x2000))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(iotlb(iova: 0, size: 0x2000, uaddr: .max, perm: 3, type: 2)) }
            == .addressOverflow(.frontEndVirtual, start: .max, size: 0x2000))
    }

    @Test func acceptsIOTLBUpdateEndingExactlyAtTwoToThe64() throws {
        let start: UInt64 = 0xFFFF_FFFF_FFFF_F000
        #expect(try decodeMessage(iotlb(iova: start, size: 0x1000, uaddr: 0x7000_0000, perm: 1, type: 2))
            == .iotlbMsg(IOTLBMessage(iova: start, size: 0x1000, userAddress: 0x7000_0000, permission: .readOnly, type: .update)))
    }

    @Test func rejectsDeviceStatusWiderThanAByte() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(message(39, payload: le64(0x100))) } == .invalidDeviceStatus(0x100))
    }

    @Test func rejectsFeaturesTheBackEndDidNotOffer() {
        var context = permissiveContext
        context.offeredFeatures = [.version1, .flush, .protocolFeatures]
        let features: VirtioFeatures = [.version1, .ringPacked, .flush]
        let bytes = message(2, payload: le64(features.rawValue))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, context: context) } == .unsupportedFeatures(.ringPacked))
    }

    @Test func rejectsProtocolFeaturesTheBackEndDidNotOffer() throws {
        var context = permissiveContext
        context.offeredProtocolFeatures = [.replyAck, .multiQueue]
        let bytes = message(16, payload: le64(ProtocolFeatures([.replyAck, .config]).rawValue))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, context: context) } == .unsupportedProtocolFeatures(.config))
        context.offeredProtocolFeatures = nil
        #expect(try decodeMessage(bytes, context: context) == .setProtocolFeatures([.replyAck, .config]))
    }

    @Test func rejectsDeviceStateDirectionAndPhaseOutsideTheSpec() {
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(message(42, payload: le32(2) + le32(0)), fds: 1) }
            == .invalidDeviceStateDirection(2))
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(message(42, payload: le32(0) + le32(1)), fds: 1) }
            == .invalidDeviceStatePhase(1))
    }
}
