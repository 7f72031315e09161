import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol

extension BackEndIntegration {
    @Suite("One front end after another")
    struct ReconnectionTests {
        @Test("after a front end disconnects with rings running, the next one is served")
        func servesNextAfterCleanDisconnect() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let files = SentFiles()
            do {
                let first = try StartedFrontEnd.start(backEnd)
                #expect(try first.guest.write(sector: 1, pattern(count: 4096, seed: 1)) == BlockGuest.statusOK)
                // Left in flight: made available, never kicked.
                try first.guest.submit(queue: 1, type: BlockGuest.RequestType.flush.rawValue, sector: 0, kick: false)
                // The test's own mapping goes with `first`; only the descriptor stays tracked.
                for region in first.guest.ram.regions { files.track(region.descriptor, label: "guest RAM") }
                for eventfd in first.guest.kicks + first.guest.calls + first.guest.errors {
                    files.track(eventfd.descriptor, label: "ring eventfd")
                }
            }
            let mark = backEnd.logMark
            expectServesNewFrontEnd(backEnd)
            #expect(backEnd.connectionsServed == 2)
            #expect(backEnd.logEntry(containing: "front end closed the connection", after: 0, waitingUpTo: 1_000) != nil)
            #expect(backEnd.logs.all.dropFirst(mark).filter { $0.level >= .warning }.isEmpty, "\(backEnd.transcript(after: mark))")
            #expect(files.leaks(socketPath: backEnd.socketPath) == [])
        }

        /// A message cut short: the bytes sent before the front end goes away.
        static let cuts: [(String, [UInt8], Int)] = [
            ("in the header", littleEndian(VhostUserRequest.getFeatures.rawValue) + [0x01], 0),
            ("in the payload", littleEndian(VhostUserRequest.setMemTable.rawValue) + littleEndian(UInt32(1))
                + littleEndian(UInt32(8 + 32)) + littleEndian(UInt32(1)) + [0, 0, 0, 0, 0, 0], 1),
        ]

        @Test("after a front end disconnects mid-message, the next one is served", arguments: 0..<2)
        func servesNextAfterDisconnectMidMessage(cut: Int) throws {
            let (name, bytes, fdCount) = Self.cuts[cut]
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let files = SentFiles()
            let mark = backEnd.logMark
            do {
                let session = try backEnd.connect()
                let memfd = try MemFD.create(name: "cut-\(cut)", size: 1 << 20)
                files.track(memfd, label: "memfd sent with the cut message")
                try session.sendRaw(bytes: bytes, descriptors: Array(repeating: memfd.rawValue, count: fdCount))
            }
            #expect(backEnd.logEntry(containing: "peer closed mid-message", after: mark, waitingUpTo: 5_000) != nil,
                    "cut \(name): \(backEnd.transcript(after: mark))")
            expectServesNewFrontEnd(backEnd)
            #expect(files.leaks(socketPath: backEnd.socketPath) == [])
        }

        @Test("a front end that stalls mid-message is disconnected after the receive timeout")
        func stalledFrontEndIsDisconnected() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            let mark = backEnd.logMark
            try session.sendRaw(bytes: littleEndian(VhostUserRequest.getFeatures.rawValue) + [0x01])
            let started = ContinuousClock.now
            #expect(throws: FrontEndError.connectionClosed(request: nil)) {
                try session.receiveRawReply(timeoutMilliseconds: 15_000)
            }
            // Not before the receive timeout (5 s): the daemon waited for the rest of the message.
            let waited = ContinuousClock.now - started
            #expect(waited >= .seconds(4), "closed after \(waited)")
            #expect(backEnd.logEntry(containing: "front end disconnected", after: mark, waitingUpTo: 1_000) != nil)
            expectServesNewFrontEnd(backEnd)
        }

        @Test("a front end trickling a message under the receive timeout is cut at the message deadline")
        func tricklingFrontEndIsDisconnected() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            let mark = backEnd.logMark
            // One byte every 2 s: each read finishes well inside the 5 s receive timeout.
            let header = littleEndian(VhostUserRequest.getFeatures.rawValue) + littleEndian(UInt32(1)) + littleEndian(UInt32(0))
            var sent = 0
            for byte in header {
                do {
                    try session.sendRaw(bytes: [byte])
                } catch {
                    break
                }
                sent += 1
                if backEnd.logEntry(containing: "before its deadline", after: mark, waitingUpTo: 2_000) != nil { break }
            }
            #expect(sent < header.count, "the whole header trickled in")
            #expect(backEnd.logEntry(containing: "front end disconnected", after: mark, waitingUpTo: 1_000) != nil)
            expectServesNewFrontEnd(backEnd)
        }

        @Test("with one connection allowed, a second front end waits until the first leaves, then is served")
        func secondFrontEndWaitsForTheFirst() throws {
            let backEnd = try InProcessBackEnd(maximumConnections: 1)
            defer { backEnd.stop() }
            let first = try StartedFrontEnd.start(backEnd)
            let second = try backEnd.connect()
            try second.sendRaw(bytes: littleEndian(VhostUserRequest.getFeatures.rawValue) + littleEndian(UInt32(1))
                + littleEndian(UInt32(0)))
            #expect(try second.receiveRawReply(timeoutMilliseconds: 300) == nil)
            #expect(try first.guest.write(sector: 2, pattern(count: 512, seed: 2)) == BlockGuest.statusOK)
            first.session.socket.shutdown()
            let reply = try #require(try second.receiveRawReply(timeoutMilliseconds: 5_000))
            #expect(reply.header.request == VhostUserRequest.getFeatures.rawValue)
            #expect(reply.header.flags.rawValue == 0x5)
            #expect(backEnd.connectionsServed == 2)
        }

        @Test("stopping the daemon with a front end attached stops its workers")
        func stopWithFrontEndAttached() throws {
            let files = SentFiles()
            let socketPath: String
            do {
                let backEnd = try InProcessBackEnd()
                socketPath = backEnd.socketPath
                let started = try StartedFrontEnd.start(backEnd)
                #expect(try started.guest.write(sector: 2, pattern(count: 512, seed: 2)) == BlockGuest.statusOK)
                for region in started.guest.ram.regions { files.track(region.descriptor, label: "guest RAM") }
                backEnd.stop()
                #expect(backEnd.logEntry(containing: "daemon stopping", after: 0, waitingUpTo: 1_000) != nil)
            }
            #expect(files.leaks(socketPath: nil) == [])
            #expect(DescriptorCensus.socketInodes(boundTo: socketPath).isEmpty)
        }
    }
}
