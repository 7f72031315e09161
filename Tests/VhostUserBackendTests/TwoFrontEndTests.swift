import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioBlk
import VirtioCore
import VirtioSpec

extension BackEndIntegration {
    /// A live migration on one host as the back end sees it: the destination QEMU connects to
    /// the same socket while the source still serves the guest, then takes the rings over where
    /// the source's GET_VRING_BASE left them, on the same disk.
    @Suite("Two front ends at once (a migration's source and destination)")
    struct TwoFrontEndTests {
        @Test("the destination connects while the source serves, keeps the device state, and continues the rings on the same disk")
        func destinationTakesOverFromTheSource() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let source = try StartedFrontEnd.start(backEnd)
            let guest = source.guest
            // The source's guest turns the write cache off (the one piece of device state).
            try source.session.writeConfig(offset: UInt32(BlockDeviceConfiguration.writebackOffset), bytes: [0])
            let early = pattern(count: 8192, seed: 11)
            #expect(try guest.write(queue: 0, sector: 40, early) == BlockGuest.statusOK)

            // The destination's start-up, the source still serving: handshake, GET_CONFIG, and
            // the reset QEMU 8.2 and later send; the source's guest is unaffected.
            let destination = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(destination)
            try destination.resetDevice()
            #expect(negotiated.config[Int(BlockDeviceConfiguration.writebackOffset)] == 0)
            let during = pattern(count: 4096, seed: 12)
            #expect(try guest.write(queue: 1, sector: 80, during) == BlockGuest.statusOK)
            #expect(backEnd.logs.first(waitingUpTo: 1_000) { $0.description.contains("another front end is served") } != nil)

            // Switch-over with requests just made available: what the source took completes
            // before its GET_VRING_BASE answers, the rest the destination serves from that base.
            var inFlight: [BlockGuest.Pending] = []
            for index in 0..<4 {
                let sector = UInt64(200 + index * 8)
                inFlight.append(try guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: sector,
                                                 outData: pattern(count: 4096, seed: UInt64(20 + index))))
            }
            let bases = try QEMUSequence.stop(source.session, queueCount: guest.queues.count)
            #expect((1...5).contains(bases[0]) && bases[1] == 1, "\(bases)")
            try QEMUSequence.start(destination, guest: guest, features: negotiated.features, bases: bases)
            #expect(try guest.complete(inFlight).allSatisfy { $0.status == BlockGuest.statusOK })
            #expect(try destination.readConfig(offset: 0, size: 57)[Int(BlockDeviceConfiguration.writebackOffset)] == 0)

            // Every write the source made reads back through the destination.
            #expect(try guest.read(queue: 1, sector: 40, count: early.count).data == early)
            #expect(try guest.read(queue: 0, sector: 80, count: during.count).data == during)
            for index in 0..<4 {
                let expected = pattern(count: 4096, seed: UInt64(20 + index))
                let data = try guest.read(queue: 0, sector: UInt64(200 + index * 8), count: 4096).data
                #expect(data == expected)
            }
            // The source goes away (QEMU quits after the migration): the destination goes on.
            source.session.socket.shutdown()
            #expect(backEnd.logs.first(waitingUpTo: 2_000) { $0.description.contains("front end disconnected") } != nil)
            let after = pattern(count: 4096, seed: 13)
            #expect(try guest.write(queue: 1, sector: 96, after) == BlockGuest.statusOK)
            #expect(try readFile(backEnd.imagePath, offset: 96 * 512, count: after.count) == after)
            #expect(backEnd.connectionsServed == 2)
        }

        @Test("past --max-connections a front end waits in the backlog until one leaves")
        func connectionsAreBounded() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let first = try StartedFrontEnd.start(backEnd)
            let second = try StartedFrontEnd.start(backEnd)
            #expect(try second.guest.write(sector: 8, pattern(count: 512, seed: 1)) == BlockGuest.statusOK)
            let third = try backEnd.connect()
            try third.sendRaw(bytes: littleEndian(VhostUserRequest.getFeatures.rawValue) + littleEndian(UInt32(1))
                + littleEndian(UInt32(0)))
            #expect(try third.receiveRawReply(timeoutMilliseconds: 300) == nil)
            first.session.socket.shutdown()
            let reply = try #require(try third.receiveRawReply(timeoutMilliseconds: 5_000))
            #expect(reply.header.request == VhostUserRequest.getFeatures.rawValue)
            #expect(backEnd.connectionsServed == 3)
        }
    }
}
