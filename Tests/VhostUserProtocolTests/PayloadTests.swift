import Testing
import VhostUserProtocol
import VirtioSpec

@Suite("Payload types on their own")
struct PayloadTests {
    @Test func parsingAFixedPayloadFromTheWrongLengthNamesThePayload() {
        #expect(thrownError { () throws(ProtocolError) in try parsePayload([0, 0, 0, 0, 0, 0, 0]) { p throws(ProtocolError) in try VringState(parsing: p) } }
            == .payloadLengthMismatch(payload: "vring state", expected: 8, actual: 7))
        #expect(thrownError { () throws(ProtocolError) in try parsePayload([UInt8](repeating: 0, count: 33)) { p throws(ProtocolError) in try IOTLBMessage(parsing: p) } }
            == .payloadLengthMismatch(payload: "IOTLB message", expected: 32, actual: 33))
        #expect(thrownError { () throws(ProtocolError) in try parsePayload([1, 0, 0, 0]) { p throws(ProtocolError) in try MemoryTableDescription(parsing: p) } }
            == .payloadLengthMismatch(payload: "memory table", expected: 8, actual: 4))
        #expect(thrownError { () throws(ProtocolError) in try parsePayload(le32(1) + le32(0)) { p throws(ProtocolError) in try MemoryTableDescription(parsing: p) } }
            == .payloadLengthMismatch(payload: "memory table", expected: 40, actual: 8))
    }

    @Test func layoutsHaveTheSizesTheSpecificationGives() {
        #expect(VringState.byteCount == 8)
        #expect(VringAddress.byteCount == 40)
        #expect(VringFileIndex.byteCount == 8)
        #expect(MemoryRegionDescription.byteCount == 32)
        #expect(MemoryTableDescription.byteCount(regionCount: 8) == 264)
        #expect(SingleMemoryRegion.byteCount == 40)
        #expect(IOTLBMessage.byteCount == 32)
        #expect(InflightDescription.byteCount == 24)
        #expect(LogDescription.byteCount == 16)
        #expect(ConfigAccess.headerByteCount == 12)
        #expect(VringAreaDescription.byteCount == 24)
        #expect(SharedObjectID.byteCount == 16)
        #expect(SharedMemoryMapping.byteCount == 40)
        #expect(DeviceStateTransfer.byteCount == 8)
        #expect(MessageHeader.byteCount == 12)
    }

    @Test func ignoresPaddingBytes() throws {
        // QEMU zeroes padding, but the specification gives it no meaning, so it is not checked.
        let iotlb = try parsePayload(le64(0x1000) + le64(0x1000) + le64(0x7000) + [1, 2] + [UInt8](repeating: 0xAA, count: 6)) { p throws(ProtocolError) in
            try IOTLBMessage(parsing: p)
        }
        #expect(iotlb == IOTLBMessage(iova: 0x1000, size: 0x1000, userAddress: 0x7000, permission: .readOnly, type: .update))
        let single = try parsePayload(le64(.max) + lowRAMBytes) { p throws(ProtocolError) in try SingleMemoryRegion(parsing: p) }
        #expect(single.region == lowRAM)
        let table = try parsePayload(le32(1) + le32(0xFFFF_FFFF) + lowRAMBytes) { p throws(ProtocolError) in try MemoryTableDescription(parsing: p) }
        #expect(table.regions == [lowRAM])
        let inflight = try parsePayload(le64(1) + le64(2) + [3, 0, 4, 0] + [9, 9, 9, 9]) { p throws(ProtocolError) in try InflightDescription(parsing: p) }
        #expect(inflight == InflightDescription(mmapSize: 1, mmapOffset: 2, numQueues: 3, queueSize: 4))
    }

    @Test func vringFileIndexRoundTripsItsRawValue() throws {
        let withFd = try VringFileIndex(rawValue: 0x07)
        #expect(withFd.index == 7 && withFd.hasFileDescriptor && withFd.fileDescriptorCount == 1)
        let withoutFd = try VringFileIndex(rawValue: 0x1FF)
        #expect(withoutFd.index == 255 && !withoutFd.hasFileDescriptor && withoutFd.rawValue == 0x1FF)
        #expect(thrownError { () throws(ProtocolError) in try VringFileIndex(index: 256, hasFileDescriptor: true) }
            == .queueIndexOutOfRange(index: 256, count: 256))
    }

    @Test func memoryRegionConstructorValidates() {
        #expect(thrownError { () throws(ProtocolError) in try MemoryRegionDescription(guestPhysicalAddress: 0, size: 0, userAddress: 0, mmapOffset: 0) }
            == .memoryRegionEmpty)
        #expect(thrownError { () throws(ProtocolError) in try MemoryRegionDescription(guestPhysicalAddress: 1, size: .max, userAddress: 0, mmapOffset: 0) }
            == .addressOverflow(.guestPhysical, start: 1, size: .max))
        #expect(thrownError { () throws(ProtocolError) in try MemoryRegionDescription(guestPhysicalAddress: 0, size: .max, userAddress: 0, mmapOffset: 0) }
            == nil)
    }

    @Test func configConstructorValidates() throws {
        #expect(thrownError { () throws(ProtocolError) in try ConfigAccess(offset: 0, bytes: []) } == .invalidConfigAccess(offset: 0, size: 0))
        #expect(thrownError { () throws(ProtocolError) in try ConfigAccess(offset: 200, bytes: [UInt8](repeating: 0, count: 57)) }
            == .invalidConfigAccess(offset: 200, size: 57))
        #expect(thrownError { () throws(ProtocolError) in try ConfigAccess(offset: 0, flags: 3, bytes: [0]) } == .invalidConfigFlags(3))
        let read = try ConfigAccess.read(offset: 0, size: 57)
        #expect(read.bytes == [UInt8](repeating: 0, count: 57) && read.size == 57 && read.byteCount == 69)
        #expect(read.hasSameRange(as: try ConfigAccess(offset: 0, bytes: configReplyBytes)))
    }

    @Test func vringAddressConstructorRejectsUndefinedFlags() {
        #expect(thrownError { () throws(ProtocolError) in
            try VringAddress(index: 0, flags: VringAddressFlags(rawValue: 0x4), descriptorTable: 0, usedRing: 0, availableRing: 0, logGuestAddress: 0)
        } == .invalidVringAddressFlags(0x4))
    }

    @Test func sharedObjectIDNeedsSixteenBytes() {
        #expect(thrownError { () throws(ProtocolError) in try SharedObjectID(uuid: [1, 2, 3]) }
            == .payloadLengthMismatch(payload: "shared object UUID", expected: 16, actual: 3))
    }
}

@Suite("Names and messages")
struct NamingTests {
    @Test func requestCodesAreContiguousFromOne() {
        #expect(VhostUserRequest.allCases.map(\.rawValue) == Array(1...44))
        #expect(BackendRequest.allCases.map(\.rawValue) == Array(1...10))
    }

    @Test func requestsCarryTheirSpecificationNames() {
        #expect(VhostUserRequest.setBackendReqFd.specName == "VHOST_USER_SET_BACKEND_REQ_FD")
        #expect(VhostUserRequest.getShmemConfig.description == "VHOST_USER_GET_SHMEM_CONFIG")
        #expect(BackendRequest.configChangeMsg.specName == "VHOST_USER_BACKEND_CONFIG_CHANGE_MSG")
        #expect(Set(VhostUserRequest.allCases.map(\.specName)).count == 44)
        #expect(VhostUserRequest.allCases.allSatisfy { $0.specName.hasPrefix("VHOST_USER_") })
    }

    @Test func featureSetsPrintTheirNamedBitsAndTheRestInHex() {
        #expect(VirtioFeatures([.flush, .version1]).description == "[FLUSH, VERSION_1]")
        #expect(VirtioFeatures(rawValue: 1 << 33 | 1 << 50).description == "[ACCESS_PLATFORM, 0x4000000000000]")
        #expect(ProtocolFeatures([.replyAck, .config]).description == "[REPLY_ACK, CONFIG]")
        #expect(ProtocolFeatures(rawValue: 0).description == "[]")
    }

    static let everyError: [ProtocolError] = [
        .wrongHeaderSize(3), .badVersion(flags: 2), .reservedFlagBits(flags: 0x11),
        .payloadTooLarge(size: 5000, limit: 4096), .payloadSizeMismatchesHeader(headerSize: 8, actual: 4),
        .replyFlagOnRequest(flags: 5), .unknownRequest(99),
        .wrongPayloadSize(request: .setVringNum, expected: 8, actual: 4),
        .payloadLengthMismatch(payload: "vring state", expected: 8, actual: 4),
        .wrongFileDescriptorCount(request: .remMemReg, expected: 0...1, actual: 2),
        .queueIndexOutOfRange(index: 4, count: 2), .reservedVringFileBits(0x200),
        .invalidVringAddressFlags(2), .invalidQueueSize(3), .invalidVringBase(0x10000),
        .invalidVringEnable(2), .invalidVringEndian(2), .memoryRegionEmpty,
        .memoryRegionOverlap(.guestPhysical), .addressOverflow(.fileOffset, start: .max, size: 1),
        .noMemoryRegions, .tooManyRegions(count: 9, limit: 8), .invalidConfigAccess(offset: 250, size: 7),
        .invalidConfigFlags(2), .invalidIOTLBPermission(4), .invalidIOTLBType(9),
        .unexpectedIOTLBMessageType(.miss), .emptyIOTLBUpdate, .invalidDeviceStatus(0x100),
        .invalidDeviceStateDirection(2), .invalidDeviceStatePhase(1), .unsupportedFeatures(.ringPacked),
        .unsupportedProtocolFeatures(.config), .featureNotNegotiated(request: .getQueueNum, missing: .protocolFeature(.multiQueue)),
        .wrongReplyFlags(0xD), .unexpectedReplyRequest(expected: 1, actual: 15),
        .replyVringIndexMismatch(expected: 0, actual: 1), .replyConfigMismatch, .unsupportedReply(.postcopyAdvise),
        .unknownBackendRequest(11), .wrongBackendPayloadSize(request: .iotlbMsg, expected: 32, actual: 8),
        .wrongBackendFileDescriptorCount(request: .shmemMap, expected: 1...1, actual: 0),
    ]

    @Test("describes itself in one line", arguments: everyError)
    func errorDescribesItselfInOneLine(_ error: ProtocolError) {
        #expect(!error.description.isEmpty)
        #expect(!error.description.contains("\n"))
    }

    @Test func errorMessagesCarryTheirContext() {
        #expect(ProtocolError.wrongFileDescriptorCount(request: .remMemReg, expected: 0...1, actual: 2).description
            == "VHOST_USER_REM_MEM_REG: expected 0...1 file descriptors, got 2")
        #expect(ProtocolError.badVersion(flags: 0x2).description == "unsupported protocol version 2 in flags 0x2 (expected 1)")
        #expect(ProtocolError.addressOverflow(.guestPhysical, start: .max, size: 1).description
            == "guest physical range 0xffffffffffffffff + 0x1 overflows 64 bits")
    }
}
