import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol

@Suite("Config space, reset and memory tables")
struct DeviceAndMemoryTests {
    // MARK: Config space

    @Test func readConfigSendsQEMUsGetConfigAndReturnsTheBytes() throws {
        let (session, backEnd, handshake) = try negotiatedSession(
            protocolFeatures: [.config], then: [.reply(QEMUBytes.configReply)])
        let bytes = try session.readConfig(offset: 0, size: 57)
        #expect(bytes == QEMUBytes.configBytes)
        #expect(try backEnd.finish().dropFirst(handshake).map(\.bytes) == [QEMUBytes.getConfig])
    }

    @Test func writeConfigAsksForAnAckUnderReplyAck() throws {
        let (session, backEnd, handshake) = try negotiatedSession(
            protocolFeatures: [.config, .replyAck], then: [.reply(QEMUBytes.u64Reply(.setConfig, 0))])
        try session.writeConfig(offset: 32, bytes: [1])
        #expect(try backEnd.finish().dropFirst(handshake).map(\.bytes) == [QEMUBytes.setConfig])
    }

    @Test func writeConfigWithoutReplyAckSendsNoNeedReplyAndWaitsForNothing() throws {
        let (session, backEnd, handshake) = try negotiatedSession(protocolFeatures: [.config], then: [.nothing])
        try session.writeConfig(offset: 32, bytes: [1])
        var expected = QEMUBytes.setConfig
        expected[4] = 0x01
        #expect(try backEnd.finish().dropFirst(handshake).map(\.bytes) == [expected])
    }

    @Test func configStepsNeedTheConfigProtocolFeature() throws {
        let (session, backEnd, _) = try negotiatedSession(protocolFeatures: [.replyAck], then: [])
        #expect(throws: FrontEndError.notNegotiated(request: .getConfig, missing: .protocolFeature(.config))) {
            try session.readConfig(offset: 0, size: 57)
        }
        #expect(throws: FrontEndError.notNegotiated(request: .setConfig, missing: .protocolFeature(.config))) {
            try session.writeConfig(offset: 32, bytes: [1])
        }
        _ = try backEnd.finish()
        #expect(backEnd.nothingPending())
    }

    @Test func anOutOfRangeConfigReadIsRefusedBeforeSending() throws {
        let (session, backEnd, _) = try negotiatedSession(protocolFeatures: [.config], then: [])
        #expect(throws: FrontEndError.invalidMessage(.invalidConfigAccess(offset: 250, size: 8))) {
            try session.readConfig(offset: 250, size: 8)
        }
        _ = try backEnd.finish()
        #expect(backEnd.nothingPending())
    }

    @Test func resetDeviceNeedsItsProtocolFeature() throws {
        let (session, backEnd, handshake) = try negotiatedSession(protocolFeatures: [.resetDevice], then: [.nothing])
        try session.resetDevice()
        #expect(try backEnd.finish().dropFirst(handshake).map(\.bytes) == [QEMUBytes.resetDevice])

        let (other, _, _) = try negotiatedSession(protocolFeatures: [.replyAck], then: [])
        #expect(throws: FrontEndError.notNegotiated(request: .resetDevice, missing: .protocolFeature(.resetDevice))) {
            try other.resetDevice()
        }
    }

    // MARK: Memory tables

    @Test func setMemoryTableSendsQEMUsBytesAndOneFdPerRegion() throws {
        let (session, backEnd, handshake) = try negotiatedSession(
            protocolFeatures: [.replyAck], then: [.reply(QEMUBytes.u64Reply(.setMemTable, 0))])
        // One memfd behind both regions, passed once per region, as QEMU does.
        let ram = try MemFD.create(name: "guest-ram", size: QEMUBytes.guestRAMSize)
        try session.setMemoryTable([(QEMUBytes.lowRAM, ram.rawValue), (QEMUBytes.highRAM, ram.rawValue)])
        let sent = try #require(try backEnd.finish().dropFirst(handshake).first)
        #expect(sent.bytes == QEMUBytes.setMemTable)
        #expect(try sent.descriptorSizes() == [QEMUBytes.guestRAMSize, QEMUBytes.guestRAMSize])
        #expect(sent.descriptors.allSatisfy { $0.rawValue != ram.rawValue })
    }

    @Test func memoryTableFdsArriveInRegionOrderAndShareTheMemory() throws {
        let (session, backEnd, handshake) = try negotiatedSession(
            protocolFeatures: [.replyAck], then: [.reply(QEMUBytes.u64Reply(.setMemTable, 0))])
        let low = try MemFD.create(name: "low", size: 0xA_0000)
        let high = try MemFD.create(name: "high", size: 0x3FF4_0000)
        try session.setMemoryTable([(QEMUBytes.lowRAM, low.rawValue), (QEMUBytes.highRAM, high.rawValue)])
        let sent = try #require(try backEnd.finish().dropFirst(handshake).first)
        #expect(try sent.descriptorSizes() == [0xA_0000, 0x3FF4_0000])

        let frontEndView = try MemoryMapping(descriptor: low, offset: 0, length: 4096)
        let backEndView = try MemoryMapping(descriptor: sent.descriptors[0], offset: 0, length: 4096)
        frontEndView.bytes[100] = 0x5A
        #expect(backEndView.bytes[100] == 0x5A)
    }

    @Test func setMemoryTableWithoutReplyAckDoesNotWait() throws {
        let (session, backEnd, handshake) = try negotiatedSession(
            features: [.version1], protocolFeatures: [], then: [.nothing])
        let ram = try MemFD.create(name: "guest-ram", size: 0xA_0000)
        try session.setMemoryTable([(QEMUBytes.lowRAM, ram.rawValue)])
        let sent = try #require(try backEnd.finish().dropFirst(handshake).first)
        #expect(sent.bytes == message(.setMemTable, le32(1) + le32(0) + QEMUBytes.lowRAMBytes))
        #expect(sent.descriptors.count == 1)
    }

    @Test func anInvalidMemoryTableIsRefusedBeforeSending() throws {
        let (session, backEnd, _) = try negotiatedSession(protocolFeatures: [.replyAck], then: [])
        #expect(throws: FrontEndError.invalidMessage(.noMemoryRegions)) {
            try session.setMemoryTable([])
        }
        let ram = try MemFD.create(name: "guest-ram", size: 0xA_0000)
        #expect(throws: FrontEndError.invalidMessage(.memoryRegionOverlap(.guestPhysical))) {
            try session.setMemoryTable([(QEMUBytes.lowRAM, ram.rawValue), (QEMUBytes.lowRAM, ram.rawValue)])
        }
        _ = try backEnd.finish()
        #expect(backEnd.nothingPending())
    }

    @Test func addAndRemoveMemoryRegionSendQEMUsBytes() throws {
        let (session, backEnd, handshake) = try negotiatedSession(
            protocolFeatures: [.replyAck, .configureMemSlots],
            then: [
                .reply(QEMUBytes.u64Reply(.addMemReg, 0)),
                .reply(QEMUBytes.u64Reply(.remMemReg, 0)),
                .reply(QEMUBytes.u64Reply(.remMemReg, 0)),
            ])
        let ram = try MemFD.create(name: "guest-ram", size: QEMUBytes.guestRAMSize)
        try session.addMemoryRegion(QEMUBytes.highRAM, fd: ram.rawValue)
        try session.removeMemoryRegion(QEMUBytes.lowRAM)
        try session.removeMemoryRegion(QEMUBytes.highRAM)
        let sent = Array(try backEnd.finish().dropFirst(handshake))
        try #require(sent.count == 3)
        #expect(sent[0].bytes == QEMUBytes.addMemReg)
        #expect(try sent[0].descriptorSizes() == [QEMUBytes.guestRAMSize])
        #expect(sent[1].bytes == QEMUBytes.remMemReg)
        #expect(sent[1].descriptors.isEmpty)
        // REM_MEM_REG goes out with mmap_offset 0, as QEMU 7.2 sends it.
        #expect(sent[2].bytes == message(.remMemReg, flags: 0x9, le64(0) + QEMUBytes.highRAMBytes.dropLast(8) + le64(0)))
    }

    @Test func addMemoryRegionNeedsConfigureMemSlots() throws {
        let (session, _, _) = try negotiatedSession(protocolFeatures: [.replyAck], then: [])
        let ram = try MemFD.create(name: "guest-ram", size: 0xA_0000)
        #expect(throws: FrontEndError.notNegotiated(request: .addMemReg, missing: .protocolFeature(.configureMemSlots))) {
            try session.addMemoryRegion(QEMUBytes.lowRAM, fd: ram.rawValue)
        }
        #expect(throws: FrontEndError.notNegotiated(request: .remMemReg, missing: .protocolFeature(.configureMemSlots))) {
            try session.removeMemoryRegion(QEMUBytes.lowRAM)
        }
    }
}
