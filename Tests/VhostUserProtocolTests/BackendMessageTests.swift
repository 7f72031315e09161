import Testing
import VhostUserProtocol

@Suite("Back-end channel")
struct BackendMessageTests {
    static let miss = IOTLBMessage(iova: 0xFFFF_F000, size: 0, userAddress: 0, permission: .readOnly, type: .miss)

    @Test func encodesIOTLBMissWithNeedReply() {
        let (bytes, fds) = BackendMessage.iotlbMsg(Self.miss).encoded(needReply: true)
        #expect(bytes == [
            0x01, 0, 0, 0, 0x09, 0, 0, 0, 0x20, 0, 0, 0,
            0x00, 0xF0, 0xFF, 0xFF, 0, 0, 0, 0,  // iova 0xfffff000
            0, 0, 0, 0, 0, 0, 0, 0,  // size
            0, 0, 0, 0, 0, 0, 0, 0,  // uaddr
            0x01, 0x01, 0, 0, 0, 0, 0, 0,  // perm RO, type MISS
        ])
        #expect(fds == 0)
    }

    @Test func encodesConfigChangeWithAnEmptyPayload() {
        #expect(BackendMessage.configChange.encoded().bytes == [0x02, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func encodesAndDecodesTheFrontEndsAck() throws {
        let ack = BackendAck(request: .iotlbMsg, value: 0)
        let bytes = ack.encoded()
        #expect(bytes == [0x01, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        let decoded = try decodeBackendAck(bytes, answering: .iotlbMsg)
        #expect(decoded == ack)
        #expect(decoded.isSuccess)
    }

    static let all: [BackendMessage] = [
        .iotlbMsg(miss),
        .iotlbMsg(IOTLBMessage(iova: 0x2000, size: 0, userAddress: 0, permission: .writeOnly, type: .accessFail)),
        .configChange,
        .vringHostNotifier(VringAreaDescription(
            vring: valid { () throws(ProtocolError) in try VringFileIndex(index: 1, hasFileDescriptor: true) }, size: 4096, offset: 0x3000)),
        .vringHostNotifier(VringAreaDescription(
            vring: valid { () throws(ProtocolError) in try VringFileIndex(index: 1, hasFileDescriptor: false) }, size: 4096, offset: 0)),
        .vringCall(VringState(index: 0, num: 0)),
        .vringErr(VringState(index: 3, num: 0)),
        .sharedObjectAdd(valid { () throws(ProtocolError) in try SharedObjectID(uuid: Array(0..<16)) }),
        .sharedObjectRemove(valid { () throws(ProtocolError) in try SharedObjectID(uuid: Array(16..<32)) }),
        .sharedObjectLookup(valid { () throws(ProtocolError) in try SharedObjectID(uuid: Array(32..<48)) }),
        .shmemMap(SharedMemoryMapping(shmid: 2, fdOffset: 0x1000, shmOffset: 0x20_0000, length: 0x1000, flags: 1)),
        .shmemUnmap(SharedMemoryMapping(shmid: 2, fdOffset: 0, shmOffset: 0x20_0000, length: 0x1000, flags: 0)),
    ]

    @Test("round-trips", arguments: all)
    func roundTrips(_ message: BackendMessage) throws {
        let (bytes, fds) = message.encoded(needReply: true)
        #expect(try decodeBackendMessage(bytes, fds: fds) == message)
    }

    @Test func everyBackendRequestIsCovered() {
        #expect(Set(Self.all.map(\.request)) == Set(BackendRequest.allCases))
    }

    @Test(arguments: [UInt32(0), 11, UInt32.max])
    func rejectsUnknownBackendRequest(code: UInt32) {
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendMessage(message(code)) } == .unknownBackendRequest(code))
    }

    @Test func rejectsBackendPayloadOfTheWrongSize() {
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendMessage(message(2, payload: [0])) }
            == .wrongBackendPayloadSize(request: .configChangeMsg, expected: 0, actual: 1))
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendMessage(message(1, payload: [UInt8](repeating: 0, count: 24))) }
            == .wrongBackendPayloadSize(request: .iotlbMsg, expected: 32, actual: 24))
    }

    @Test(arguments: [IOTLBMessageType.update, .invalidate, .batchBegin, .batchEnd])
    func rejectsIOTLBTypesTheBackEndDoesNotSend(type: IOTLBMessageType) {
        let bytes = BackendMessage.iotlbMsg(IOTLBMessage(iova: 0, size: 1, userAddress: 0, permission: .readOnly, type: type)).encoded().bytes
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendMessage(bytes) } == .unexpectedIOTLBMessageType(type))
    }

    @Test func rejectsBackendFileDescriptorCounts() {
        let miss = BackendMessage.iotlbMsg(Self.miss).encoded().bytes
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendMessage(miss, fds: 1) }
            == .wrongBackendFileDescriptorCount(request: .iotlbMsg, expected: 0...0, actual: 1))
        let notifier = message(3, payload: le64(1) + le64(4096) + le64(0))
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendMessage(notifier, fds: 0) }
            == .wrongBackendFileDescriptorCount(request: .vringHostNotifierMsg, expected: 1...1, actual: 0))
    }

    @Test func rejectsReplyFlagOnABackendRequest() {
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendMessage(message(2, flags: 0x5)) } == .replyFlagOnRequest(flags: 0x5))
    }

    @Test func rejectsAckWithEchoedNeedReply() {
        let bytes = le32(1) + le32(0xD) + le32(8) + le64(0)
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendAck(bytes, answering: .iotlbMsg) } == .wrongReplyFlags(0xD))
    }

    @Test func rejectsAckForADifferentRequest() {
        let bytes = BackendAck(request: .configChangeMsg, value: 0).encoded()
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendAck(bytes, answering: .iotlbMsg) }
            == .unexpectedReplyRequest(expected: 1, actual: 2))
    }

    @Test func rejectsAckOfTheWrongSizeOrWithAnFd() {
        let short = le32(1) + le32(5) + le32(4) + le32(0)
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendAck(short, answering: .iotlbMsg) }
            == .wrongBackendPayloadSize(request: .iotlbMsg, expected: 8, actual: 4))
        let ack = BackendAck(request: .iotlbMsg, value: 0).encoded()
        #expect(thrownError { () throws(ProtocolError) in try decodeBackendAck(ack, fds: 1, answering: .iotlbMsg) }
            == .wrongBackendFileDescriptorCount(request: .iotlbMsg, expected: 0...0, actual: 1))
    }
}
