import Testing
import VhostUserProtocol

/// A reply, the request it answers, and its exact bytes.
struct ReplyFixture: Sendable, CustomTestStringConvertible {
    let name: String
    let reply: Reply
    let answering: FrontEndMessage
    let bytes: [UInt8]
    let fds: Int

    var testDescription: String { name }
}

/// The first 8 bytes of a virtio-blk config space for a 1 GiB disk (capacity in sectors).
let capacityBytes: [UInt8] = [0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00]
let configReplyBytes = capacityBytes + [UInt8](repeating: 0, count: 49)

let replyFixtures: [ReplyFixture] = [
    ReplyFixture(
        name: "GET_FEATURES", reply: .features([.version1, .protocolFeatures, .flush]), answering: .getFeatures,
        bytes: [0x01, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x00, 0x02, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00], fds: 0),
    ReplyFixture(
        name: "GET_PROTOCOL_FEATURES", reply: .protocolFeatures([.multiQueue, .replyAck, .config]),
        answering: .getProtocolFeatures,
        bytes: [0x0F, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x09, 0x02, 0, 0, 0, 0, 0, 0], fds: 0),
    ReplyFixture(
        name: "GET_QUEUE_NUM", reply: .queueCount(4), answering: .getQueueNum,
        bytes: [0x11, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0], fds: 0),
    ReplyFixture(
        name: "GET_MAX_MEM_SLOTS", reply: .maximumMemorySlots(32), answering: .getMaxMemSlots,
        bytes: [0x24, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0], fds: 0),
    ReplyFixture(
        name: "GET_STATUS", reply: .status(0x0F), answering: .getStatus,
        bytes: [0x28, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x0F, 0, 0, 0, 0, 0, 0, 0], fds: 0),
    ReplyFixture(
        name: "GET_VRING_BASE", reply: .vringBase(VringState(index: 1, num: 42)),
        answering: .getVringBase(VringState(index: 1, num: 0)),
        bytes: [0x0B, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x01, 0, 0, 0, 0x2A, 0, 0, 0], fds: 0),
    ReplyFixture(
        name: "GET_CONFIG of 57 bytes",
        reply: .config(valid { () throws(ProtocolError) in try ConfigAccess(offset: 0, bytes: configReplyBytes) }),
        answering: .getConfig(valid { () throws(ProtocolError) in try ConfigAccess.read(offset: 0, size: 57) }),
        bytes: [0x18, 0, 0, 0, 0x05, 0, 0, 0, 0x45, 0, 0, 0,
                0x00, 0, 0, 0, 0x39, 0, 0, 0, 0x00, 0, 0, 0] + configReplyBytes,
        fds: 0),
    ReplyFixture(
        name: "GET_INFLIGHT_FD with a buffer",
        reply: .inflight(InflightDescription(mmapSize: 0x2100, mmapOffset: 0, numQueues: 4, queueSize: 128)),
        answering: .getInflightFd(InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: 4, queueSize: 128)),
        bytes: [0x1F, 0, 0, 0, 0x05, 0, 0, 0, 0x18, 0, 0, 0,
                0x00, 0x21, 0, 0, 0, 0, 0, 0,  // mmap_size 0x2100
                0, 0, 0, 0, 0, 0, 0, 0,  // mmap_offset 0
                0x04, 0x00, 0x80, 0x00, 0, 0, 0, 0],
        fds: 1),
    ReplyFixture(
        name: "GET_INFLIGHT_FD without a buffer",
        reply: .inflight(InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: 1, queueSize: 128)),
        answering: .getInflightFd(InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: 1, queueSize: 128)),
        bytes: [0x1F, 0, 0, 0, 0x05, 0, 0, 0, 0x18, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x80, 0x00, 0, 0, 0, 0],
        fds: 0),
    ReplyFixture(
        name: "IOTLB_MSG ack",
        reply: .ack(request: .iotlbMsg, value: 0),
        answering: .iotlbMsg(IOTLBMessage(iova: 0x1000, size: 0x1000, userAddress: 0x7000, permission: .readWrite, type: .update)),
        bytes: [0x16, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], fds: 0),
    ReplyFixture(
        name: "REPLY_ACK failure for SET_MEM_TABLE",
        reply: .ack(request: .setMemTable, value: 1),
        answering: .setMemTable(valid { () throws(ProtocolError) in try MemoryTableDescription(regions: [lowRAM]) }),
        bytes: [0x05, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0], fds: 0),
    ReplyFixture(
        name: "SET_LOG_BASE reply",
        reply: .ack(request: .setLogBase, value: 0),
        answering: .setLogBase(LogDescription(mmapSize: 0x1000, mmapOffset: 0)),
        bytes: [0x06, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], fds: 0),
]

@Suite("Replies")
struct ReplyTests {
    @Test("encodes to the exact bytes with flags 0x5", arguments: replyFixtures)
    func encodesExactBytes(_ fixture: ReplyFixture) {
        let (bytes, fds) = fixture.reply.encoded()
        #expect(bytes == fixture.bytes)
        #expect(fds == fixture.fds)
        #expect(bytes[4..<8] == [0x05, 0, 0, 0])
        #expect(fixture.reply.request == fixture.answering.request)
    }

    @Test("decodes against the request it answers", arguments: replyFixtures)
    func decodesAgainstTheRequest(_ fixture: ReplyFixture) throws {
        #expect(try decodeReply(fixture.bytes, fds: fixture.fds, answering: fixture.answering) == fixture.reply)
    }

    @Test(arguments: [UInt32(0x1), 0x9, 0xD])
    func rejectsReplyFlagsOtherThanExactly0x5(flags: UInt32) {
        let bytes = le32(1) + le32(flags) + le32(8) + le64(0)
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(bytes, answering: .getFeatures) } == .wrongReplyFlags(flags))
    }

    @Test func rejectsReplyToADifferentRequest() {
        let bytes = le32(15) + le32(5) + le32(8) + le64(0)
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(bytes, answering: .getFeatures) }
            == .unexpectedReplyRequest(expected: 1, actual: 15))
    }

    @Test func rejectsU64ReplyOfTheWrongSize() {
        let bytes = le32(1) + le32(5) + le32(4) + le32(0)
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(bytes, answering: .getFeatures) }
            == .wrongPayloadSize(request: .getFeatures, expected: 8, actual: 4))
    }

    @Test func rejectsConfigReplyShorterThanTheRequest() throws {
        let asked = try ConfigAccess.read(offset: 0, size: 57)
        let short = try ConfigAccess(offset: 0, bytes: Array(configReplyBytes.dropLast()))
        let bytes = Reply.config(short).encoded().bytes
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(bytes, answering: .getConfig(asked)) }
            == .wrongPayloadSize(request: .getConfig, expected: 69, actual: 68))
    }

    @Test func rejectsConfigReplyForADifferentOffset() throws {
        let asked = try ConfigAccess.read(offset: 0, size: 8)
        let bytes = Reply.config(try ConfigAccess(offset: 8, bytes: capacityBytes)).encoded().bytes
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(bytes, answering: .getConfig(asked)) } == .replyConfigMismatch)
    }

    @Test func rejectsVringBaseReplyForADifferentVring() {
        let bytes = Reply.vringBase(VringState(index: 2, num: 7)).encoded().bytes
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(bytes, answering: .getVringBase(VringState(index: 1, num: 0))) }
            == .replyVringIndexMismatch(expected: 1, actual: 2))
    }

    @Test func rejectsInflightReplyWithoutItsFd() throws {
        let fixture = try #require(replyFixtures.first { $0.fds == 1 })
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(fixture.bytes, fds: 0, answering: fixture.answering) }
            == .wrongFileDescriptorCount(request: .getInflightFd, expected: 1...1, actual: 0))
    }

    @Test func rejectsAckCarryingAnFd() {
        let bytes = Reply.ack(request: .setConfig, value: 0).encoded().bytes
        let asked = FrontEndMessage.setConfig(valid { () throws(ProtocolError) in try ConfigAccess(offset: 32, bytes: [1]) })
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(bytes, fds: 1, answering: asked) }
            == .wrongFileDescriptorCount(request: .setConfig, expected: 0...0, actual: 1))
    }

    @Test func rejectsStatusReplyWiderThanAByte() {
        let bytes = le32(40) + le32(5) + le32(8) + le64(0x1FF)
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(bytes, answering: .getStatus) } == .invalidDeviceStatus(0x1FF))
    }

    @Test func rejectsRepliesThisLibraryDoesNotModel() {
        let bytes = le32(42) + le32(5) + le32(8) + le64(0)
        let asked = FrontEndMessage.setDeviceStateFd(DeviceStateTransfer(direction: .save, phase: .stopped))
        #expect(thrownError { () throws(ProtocolError) in try decodeReply(bytes, answering: asked) } == .unsupportedReply(.setDeviceStateFd))
    }

    @Test func requestsWithoutABodyAreAnsweredByAnAck() throws {
        let bytes = Reply.ack(request: .setVringNum, value: 0).encoded().bytes
        #expect(try decodeReply(bytes, answering: .setVringNum(VringState(index: 0, num: 128))) == .ack(request: .setVringNum, value: 0))
    }

    @Test func replyBodiesFollowTheSpecification() {
        let withBody = Set(VhostUserRequest.allCases.filter(\.hasReplyBody))
        #expect(withBody == [
            .getFeatures, .getProtocolFeatures, .getQueueNum, .getVringBase, .getConfig, .getInflightFd,
            .getMaxMemSlots, .getStatus, .setLogBase, .iotlbMsg, .createCryptoSession, .postcopyAdvise,
            .postcopyEnd, .getSharedObject, .setDeviceStateFd, .checkDeviceState, .getShmemConfig,
        ])
    }
}
