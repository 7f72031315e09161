import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioSpec

@Suite("Negotiation")
struct NegotiationTests {
    @Test func negotiateSendsQEMUsHandshakeByteForByte() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([
            .reply(QEMUBytes.featuresReply),
            .reply(QEMUBytes.u64Reply(.getProtocolFeatures, QEMUBytes.fixtureProtocolFeatures.rawValue)),
            .nothing,
            .reply(QEMUBytes.queueNumReply),
            .nothing,
        ])
        let result = try session.negotiate(
            wanted: [.version1, .flush, .configWCE], wantedProtocol: FrontEndSession.qemu72ProtocolFeatures)
        let sent = try backEnd.finish()
        #expect(sent.map(\.bytes) == [
            QEMUBytes.getFeatures, QEMUBytes.getProtocolFeatures, QEMUBytes.setProtocolFeatures,
            QEMUBytes.getQueueNum, QEMUBytes.setOwner,
        ])
        #expect(sent.allSatisfy { $0.descriptors.isEmpty })
        #expect(backEnd.nothingPending())
        #expect(result.features == [.version1, .flush])
        #expect(result.protocolFeatures == QEMUBytes.fixtureProtocolFeatures)
        #expect(session.offeredFeatures == QEMUBytes.offeredFeatures)
        #expect(session.offeredProtocolFeatures == QEMUBytes.fixtureProtocolFeatures)
        #expect(session.protocolFeatures == QEMUBytes.fixtureProtocolFeatures)
        #expect(session.queueCount == 4)
        #expect(session.maximumMemorySlots == nil)
    }

    @Test func negotiateAgreesOnlyToOfferedAndWantedProtocolFeatures() throws {
        let offered: ProtocolFeatures = [.replyAck, .configureMemSlots, .xenMmap]
        let (session, backEnd) = try ScriptedBackEnd.connected([
            .reply(QEMUBytes.featuresReply),
            .reply(QEMUBytes.u64Reply(.getProtocolFeatures, offered.rawValue)),
            .nothing,
            .reply(QEMUBytes.maxMemSlotsReply),
            .nothing,
        ])
        let result = try session.negotiate(wanted: [.version1], wantedProtocol: FrontEndSession.qemu72ProtocolFeatures)
        let sent = try backEnd.finish()
        let agreed: ProtocolFeatures = [.replyAck, .configureMemSlots]  // XEN_MMAP is newer than 7.2
        #expect(sent.map(\.bytes) == [
            QEMUBytes.getFeatures, QEMUBytes.getProtocolFeatures,
            message(.setProtocolFeatures, le64(agreed.rawValue)),
            QEMUBytes.getMaxMemSlots, QEMUBytes.setOwner,
        ])
        #expect(result.protocolFeatures == agreed)
        #expect(session.maximumMemorySlots == 32)
        #expect(session.queueCount == 1)
    }

    @Test func withoutProtocolFeaturesOnlyFeaturesAndOwnerAreSent() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([
            .reply(QEMUBytes.u64Reply(.getFeatures, VirtioFeatures([.version1, .flush]).rawValue)),
            .nothing,
        ])
        let result = try session.negotiate(wanted: [.version1, .flush], wantedProtocol: FrontEndSession.qemu72ProtocolFeatures)
        #expect(try backEnd.finish().map(\.bytes) == [QEMUBytes.getFeatures, QEMUBytes.setOwner])
        #expect(result.features == [.version1, .flush])
        #expect(result.protocolFeatures == [])
        #expect(session.protocolFeatures == [])
        #expect(session.queueCount == 1)
    }

    @Test func aRequiredFeatureTheBackEndLacksStopsTheHandshake() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([.reply(QEMUBytes.featuresReply)])
        #expect(throws: FrontEndError.notOffered(.virtioFeature(.multiQueue))) {
            try session.negotiate(wanted: [.version1], wantedProtocol: [], requiring: [.version1, .multiQueue])
        }
        #expect(try backEnd.finish().map(\.bytes) == [QEMUBytes.getFeatures])
        #expect(backEnd.nothingPending())
    }

    @Test func aRequiredProtocolFeatureTheBackEndLacksStopsBeforeSetProtocolFeatures() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([
            .reply(QEMUBytes.featuresReply),
            .reply(QEMUBytes.u64Reply(.getProtocolFeatures, ProtocolFeatures.replyAck.rawValue)),
        ])
        let error = frontEndError { () throws(FrontEndError) in
            try session.negotiate(wanted: [.version1], wantedProtocol: [.replyAck], requiringProtocol: [.config, .replyAck])
        }
        #expect(error == .notOffered(.protocolFeature(.config)))
        #expect(error?.description == "the back end does not offer what is required: protocol features [CONFIG]")
        #expect(try backEnd.finish().map(\.bytes) == [QEMUBytes.getFeatures, QEMUBytes.getProtocolFeatures])
        #expect(backEnd.nothingPending())
    }

    @Test func requiredProtocolFeaturesNeedBit30() throws {
        let (session, _) = try ScriptedBackEnd.connected([
            .reply(QEMUBytes.u64Reply(.getFeatures, VirtioFeatures.version1.rawValue)),
        ])
        #expect(throws: FrontEndError.notOffered(.protocolFeaturesOffered)) {
            try session.negotiate(wanted: [.version1], wantedProtocol: [], requiringProtocol: [.config])
        }
    }

    @Test func setFeaturesAddsBit30WhenOffered() throws {
        let (session, backEnd, handshake) = try negotiatedSession(protocolFeatures: [.replyAck], then: [.nothing])
        try session.setFeatures([.version1, .flush])
        let sent = try backEnd.finish()
        #expect(sent.dropFirst(handshake).map(\.bytes) == [QEMUBytes.setFeatures])
        #expect(session.acknowledgedFeatures == [.version1, .protocolFeatures, .flush])
    }

    @Test func setFeaturesLeavesBit30OutWhenNotOffered() throws {
        let (session, backEnd, handshake) = try negotiatedSession(
            features: [.version1, .flush], protocolFeatures: [], then: [.nothing])
        try session.setFeatures([.version1, .flush])
        let sent = try backEnd.finish()
        #expect(sent.dropFirst(handshake).map(\.bytes) == [message(.setFeatures, le64(0x1_0000_0200))])
    }

    @Test func setFeaturesWithLogAllWaitsForAnAckUnderReplyAck() throws {
        let (session, backEnd, handshake) = try negotiatedSession(
            features: [.version1, .protocolFeatures, .logAll], protocolFeatures: [.replyAck],
            then: [.reply(QEMUBytes.u64Reply(.setFeatures, 0))])
        try session.setFeatures([.version1, .logAll])
        let sent = try backEnd.finish()
        let bits = VirtioFeatures([.version1, .protocolFeatures, .logAll]).rawValue
        #expect(sent.dropFirst(handshake).map(\.bytes) == [message(.setFeatures, flags: 0x9, le64(bits))])
    }
}
