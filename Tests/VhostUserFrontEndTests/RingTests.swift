import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol

@Suite("Rings")
struct RingTests {
    @Test func configureRingSendsQEMUsMessagesWithKickLast() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected(Array(repeating: .nothing, count: 6))
        let kick = try EventFD()
        let call = try EventFD()
        let error = try EventFD()
        try session.configureRing(
            index: 0, size: 128, descriptorTable: QEMUBytes.descriptorTable,
            availableRing: QEMUBytes.availableRing, usedRing: QEMUBytes.usedRing, base: 42,
            kick: kick, call: call, error: error)
        let sent = try backEnd.finish()
        #expect(sent.map(\.bytes) == [
            QEMUBytes.setVringNum, QEMUBytes.setVringBase, QEMUBytes.setVringAddr,
            QEMUBytes.setVringCall, QEMUBytes.setVringErr, QEMUBytes.setVringKick,
        ])
        #expect(sent.map(\.descriptors.count) == [0, 0, 0, 1, 1, 1])
        #expect(backEnd.nothingPending())
    }

    @Test func theNotifierFdsReachTheBackEnd() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected(Array(repeating: .nothing, count: 6))
        let kick = try EventFD()
        let call = try EventFD()
        let error = try EventFD()
        try session.configureRing(
            index: 0, size: 128, descriptorTable: QEMUBytes.descriptorTable,
            availableRing: QEMUBytes.availableRing, usedRing: QEMUBytes.usedRing,
            kick: kick, call: call, error: error)
        let sent = try backEnd.finish()
        let backEndCall = EventFD(adopting: sent[3].descriptors[0])
        let backEndError = EventFD(adopting: sent[4].descriptors[0])
        let backEndKick = EventFD(adopting: sent[5].descriptors[0])

        try kick.signal()
        #expect(try backEndKick.drain() == 1)
        try backEndCall.signal()
        try backEndCall.signal()
        #expect(try call.drain() == 2)
        #expect(try error.drain() == nil)
        try backEndError.signal()
        #expect(try error.drain() == 1)
    }

    @Test func missingCallAndErrorFdsAreSentWithTheNoFdBit() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected(Array(repeating: .nothing, count: 6))
        let kick = try EventFD()
        try session.configureRing(
            index: 3, size: 256, descriptorTable: 0x1000, availableRing: 0x2000, usedRing: 0x3000,
            kick: kick, call: nil, error: nil)
        let sent = try backEnd.finish()
        #expect(sent.map(\.bytes) == [
            message(.setVringNum, le32(3) + le32(256)),
            message(.setVringBase, le32(3) + le32(0)),
            message(.setVringAddr, le32(3) + le32(0) + le64(0x1000) + le64(0x3000) + le64(0x2000) + le64(0)),
            QEMUBytes.setVringCallNoFd,
            QEMUBytes.setVringErrNoFd,
            message(.setVringKick, le64(3)),
        ])
        #expect(sent.map(\.descriptors.count) == [0, 0, 0, 0, 0, 1])
    }

    @Test func aRingIndexTheFdMessagesCannotCarryIsRefusedBeforeSending() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([])
        let kick = try EventFD()
        #expect(throws: FrontEndError.invalidMessage(.queueIndexOutOfRange(index: 256, count: 256))) {
            try session.configureRing(
                index: 256, size: 128, descriptorTable: 0x1000, availableRing: 0x2000, usedRing: 0x3000,
                kick: kick, call: nil, error: nil)
        }
        #expect(try backEnd.finish().isEmpty)
        #expect(backEnd.nothingPending())
    }

    @Test func enableRingSendsSetVringEnable() throws {
        let (session, backEnd, handshake) = try negotiatedSession(protocolFeatures: [], then: [.nothing, .nothing])
        try session.enableRing(index: 0, true)
        try session.enableRing(index: 1, false)
        #expect(try backEnd.finish().dropFirst(handshake).map(\.bytes) == [
            QEMUBytes.setVringEnable,
            message(.setVringEnable, le32(1) + le32(0)),
        ])
    }

    @Test func enableRingNeedsBit30() throws {
        let (session, backEnd, _) = try negotiatedSession(features: [.version1], protocolFeatures: [], then: [])
        #expect(throws: FrontEndError.notNegotiated(request: .setVringEnable, missing: .protocolFeaturesOffered)) {
            try session.enableRing(index: 0, true)
        }
        _ = try backEnd.finish()
        #expect(backEnd.nothingPending())
    }

    @Test func stopRingReturnsTheBackEndsRingBase() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([.reply(QEMUBytes.vringBaseReply)])
        #expect(try session.stopRing(index: 1) == 42)
        #expect(try backEnd.finish().map(\.bytes) == [QEMUBytes.getVringBase])
    }

    @Test func aSplitRingBaseWiderThan16BitsIsAnInvalidReply() throws {
        let (session, _) = try ScriptedBackEnd.connected([
            .reply(le32(11) + le32(5) + le32(8) + le32(1) + le32(0x1_0000)),
        ])
        #expect(throws: FrontEndError.invalidReply(request: .getVringBase, .invalidVringBase(0x1_0000))) {
            try session.stopRing(index: 1)
        }
    }

    @Test func aRingBaseForAnotherRingIsAnInvalidReply() throws {
        let (session, _) = try ScriptedBackEnd.connected([
            .reply(le32(11) + le32(5) + le32(8) + le32(2) + le32(42)),
        ])
        #expect(throws: FrontEndError.invalidReply(request: .getVringBase, .replyVringIndexMismatch(expected: 1, actual: 2))) {
            try session.stopRing(index: 1)
        }
    }
}
