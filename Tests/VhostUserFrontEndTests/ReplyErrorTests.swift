import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol

/// A wrong reply to GET_FEATURES and the validation error it must produce.
struct WrongReply: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let error: ProtocolError

    var testDescription: String { name }
}

let wrongFeatureReplies: [WrongReply] = [
    WrongReply(
        name: "flags 0x1 instead of 0x5", bytes: le32(1) + le32(0x1) + le32(8) + le64(0),
        error: .wrongReplyFlags(0x1)),
    WrongReply(
        name: "NEED_REPLY echoed (flags 0xd)", bytes: le32(1) + le32(0xD) + le32(8) + le64(0),
        error: .wrongReplyFlags(0xD)),
    WrongReply(
        name: "request code of GET_PROTOCOL_FEATURES", bytes: le32(15) + le32(0x5) + le32(8) + le64(0),
        error: .unexpectedReplyRequest(expected: 1, actual: 15)),
    WrongReply(
        name: "4-byte payload", bytes: le32(1) + le32(0x5) + le32(4) + le32(0),
        error: .wrongPayloadSize(request: .getFeatures, expected: 8, actual: 4)),
    WrongReply(
        name: "empty payload", bytes: le32(1) + le32(0x5) + le32(0),
        error: .wrongPayloadSize(request: .getFeatures, expected: 8, actual: 0)),
]

@Suite("Reply errors")
struct ReplyErrorTests {
    @Test("a wrong reply is the specific invalidReply, and the session stays usable", arguments: wrongFeatureReplies)
    func wrongReply(_ wrong: WrongReply) throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([.reply(wrong.bytes), .reply(QEMUBytes.featuresReply)])
        let error = frontEndError { () throws(FrontEndError) in try session.send(.getFeatures) }
        #expect(error == .invalidReply(request: .getFeatures, wrong.error))
        #expect(error?.description.hasPrefix("VHOST_USER_GET_FEATURES: invalid reply: ") == true)
        // The reply was framed correctly, so the stream is still in step.
        #expect(try session.send(.getFeatures) == .features(QEMUBytes.offeredFeatures))
        _ = try backEnd.finish()
    }

    @Test func anAckCarryingAnFdIsAnInvalidReply() throws {
        let stray = try MemFD.create(name: "stray", size: 4096)
        let (session, _, _) = try negotiatedSession(
            protocolFeatures: [.replyAck],
            then: [.reply(QEMUBytes.u64Reply(.setMemTable, 0), descriptors: [stray.rawValue])])
        let ram = try MemFD.create(name: "guest-ram", size: 0xA_0000)
        #expect(throws: FrontEndError.invalidReply(
            request: .setMemTable, .wrongFileDescriptorCount(request: .setMemTable, expected: 0...0, actual: 1))) {
            try session.setMemoryTable([(QEMUBytes.lowRAM, ram.rawValue)])
        }
    }

    @Test func aHeaderThatCannotBeFramedMakesTheSessionUnusable() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([.reply(le32(1) + le32(0x5) + le32(0x1_0000))])
        let first = FrontEndError.invalidReply(request: .getFeatures, .payloadTooLarge(size: 0x1_0000, limit: 4096))
        #expect(throws: first) { try session.send(.getFeatures) }
        #expect(throws: FrontEndError.sessionUnusable(after: first)) { try session.send(.getFeatures) }
        #expect(try backEnd.finish().count == 1)
        #expect(backEnd.nothingPending())
    }

    @Test func aReplyWithTheWrongVersionMakesTheSessionUnusable() throws {
        let (session, _) = try ScriptedBackEnd.connected([.reply(le32(1) + le32(0x6) + le32(8) + le64(0))])
        let first = FrontEndError.invalidReply(request: .getFeatures, .badVersion(flags: 0x6))
        #expect(throws: first) { try session.send(.getFeatures) }
        #expect(throws: FrontEndError.sessionUnusable(after: first)) { try session.stopRing(index: 0) }
    }

    @Test func aConfigReplyForOtherBytesIsAnInvalidReply() throws {
        let (session, _, _) = try negotiatedSession(
            protocolFeatures: [.config],
            then: [.reply(le32(24) + le32(5) + le32(20) + le32(8) + le32(8) + le32(0) + le64(0))])
        #expect(throws: FrontEndError.invalidReply(request: .getConfig, .replyConfigMismatch)) {
            try session.readConfig(offset: 0, size: 8)
        }
    }

    // MARK: Failure acks

    @Test func aNonZeroAckIsAnErrorNamingTheRequest() throws {
        let (session, _, _) = try negotiatedSession(
            protocolFeatures: [.replyAck],
            then: [.reply(QEMUBytes.u64Reply(.setMemTable, 1)), .reply(QEMUBytes.featuresReply)])
        let ram = try MemFD.create(name: "guest-ram", size: 0xA_0000)
        let error = frontEndError { () throws(FrontEndError) in try session.setMemoryTable([(QEMUBytes.lowRAM, ram.rawValue)]) }
        #expect(error == .failureAck(request: .setMemTable, value: 1))
        #expect(error?.description == "VHOST_USER_SET_MEM_TABLE: the back end reported failure (ack value 1)")
        // A refused request leaves the stream in step.
        #expect(try session.send(.getFeatures) == .features(QEMUBytes.offeredFeatures))
    }

    @Test func aFailureAckToSetConfigNamesSetConfig() throws {
        let (session, _, _) = try negotiatedSession(
            protocolFeatures: [.replyAck, .config], then: [.reply(QEMUBytes.u64Reply(.setConfig, 22))])
        #expect(throws: FrontEndError.failureAck(request: .setConfig, value: 22)) {
            try session.writeConfig(offset: 32, bytes: [0])
        }
    }

    @Test func needReplyIsOnlySetUnderReplyAck() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([.nothing])
        #expect(try session.send(.setVringNum(VringState(index: 0, num: 128)), needReply: true) == nil)
        #expect(try backEnd.finish().map(\.bytes) == [QEMUBytes.setVringNum])
    }

    // MARK: Silence and disconnection

    @Test func aBackEndThatNeverAnswersTimesOut() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([.nothing], replyTimeoutMilliseconds: 200)
        var error: FrontEndError?
        let elapsed = ContinuousClock().measure {
            error = frontEndError { () throws(FrontEndError) in try session.send(.getFeatures) }
        }
        #expect(error == .replyTimeout(request: .getFeatures, milliseconds: 200))
        #expect(error?.description == "VHOST_USER_GET_FEATURES: no complete reply within 200 ms (back end silent or stuck)")
        #expect(elapsed >= .milliseconds(200), "gave up before the reply timeout")
        // A late reply must not answer the next request.
        #expect(throws: FrontEndError.sessionUnusable(after: .replyTimeout(request: .getFeatures, milliseconds: 200))) {
            try session.send(.getFeatures)
        }
        #expect(try backEnd.finish().map(\.bytes) == [QEMUBytes.getFeatures])
    }

    @Test func aReplyThatStopsHalfwayTimesOut() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected(
            [.reply(Array(QEMUBytes.vringBaseReply.prefix(16)))], replyTimeoutMilliseconds: 200)
        #expect(throws: FrontEndError.replyTimeout(request: .getVringBase, milliseconds: 200)) {
            try session.stopRing(index: 1)
        }
        // The back end stays connected (and silent) until here.
        withExtendedLifetime(backEnd) {}
    }

    @Test func aBackEndThatClosesIsReportedAsClosed() throws {
        let (session, _) = try ScriptedBackEnd.connected([.close])
        #expect(throws: FrontEndError.connectionClosed(request: .getFeatures)) {
            try session.send(.getFeatures)
        }
        #expect(throws: FrontEndError.sessionUnusable(after: .connectionClosed(request: .getFeatures))) {
            try session.send(.getFeatures)
        }
    }
}
