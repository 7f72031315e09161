#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol

@Suite("Raw traffic and connecting")
struct RawAndConnectTests {
    // MARK: Raw escape hatch

    @Test func sendRawSendsTheBytesAndFdsAsGiven() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([.nothing])
        let memfd = try MemFD.create(name: "hostile", size: 8192)
        // A request carrying the REPLY flag and an unknown code: nothing a session would send.
        let hostile = le32(99) + le32(0x5) + le32(4) + [0xDE, 0xAD, 0xBE, 0xEF]
        try session.sendRaw(bytes: hostile, descriptors: [memfd.rawValue])
        let sent = try backEnd.finish()
        #expect(sent.map(\.bytes) == [hostile])
        #expect(try sent[0].descriptorSizes() == [8192])
    }

    @Test func receiveRawReplyReturnsWhatTheBackEndSentUnvalidated() throws {
        let memfd = try MemFD.create(name: "reply", size: 12288)
        let reply = le32(31) + le32(0x1) + le32(4) + [1, 2, 3, 4]
        let (session, _) = try ScriptedBackEnd.connected([.reply(reply, descriptors: [memfd.rawValue])])
        try session.sendRaw(bytes: QEMUBytes.getFeatures)
        let received = try #require(try session.receiveRawReply(timeoutMilliseconds: 5_000))
        #expect(received.header == MessageHeader(request: 31, flags: .version1, size: 4))
        #expect(received.payload == [1, 2, 3, 4])
        #expect(try received.descriptors.map { try $0.size() } == [12288])
    }

    @Test func receiveRawReplyIsNilWhenNothingArrives() throws {
        let (session, backEnd) = try ScriptedBackEnd.connected([.nothing])
        try session.sendRaw(bytes: QEMUBytes.setOwner)
        _ = try backEnd.finish()
        var received: (header: MessageHeader, payload: [UInt8], descriptors: [OwnedFileDescriptor])?
        var error: FrontEndError?
        let elapsed = ContinuousClock().measure {
            do throws(FrontEndError) {
                received = try session.receiveRawReply(timeoutMilliseconds: 100)
            } catch let failure {
                error = failure
            }
        }
        #expect(received == nil)
        #expect(error == nil)
        #expect(elapsed >= .milliseconds(100))
    }

    @Test func receiveRawReplyReportsAClosedConnection() throws {
        let (session, _) = try ScriptedBackEnd.connected([.close])
        try session.sendRaw(bytes: QEMUBytes.getFeatures)
        #expect(throws: FrontEndError.connectionClosed(request: nil)) {
            try session.receiveRawReply(timeoutMilliseconds: 5_000)
        }
    }

    // MARK: Connecting

    @Test func connectReachesAListeningBackEnd() throws {
        let path = temporarySocketPath()
        defer { unlink(path) }
        let listener = try UnixSocket.listen(path: path)
        let session = try FrontEndSession.connect(path: path, timeoutMilliseconds: 1_000)
        let accepted = try #require(try listener.accept())
        let backEnd = ScriptedBackEnd(socket: accepted, answers: [.reply(QEMUBytes.featuresReply)])
        #expect(try session.send(.getFeatures) == .features(QEMUBytes.offeredFeatures))
        #expect(try backEnd.finish().map(\.bytes) == [QEMUBytes.getFeatures])
    }

    @Test func connectWaitsForABackEndThatIsStillStarting() throws {
        let path = temporarySocketPath()
        defer { unlink(path) }
        let started = ListenerBox()
        let thread = Thread {
            usleep(150_000)
            started.listener = try? UnixSocket.listen(path: path)
            started.ready.signal()
        }
        thread.start()
        let session = try FrontEndSession.connect(path: path, timeoutMilliseconds: 5_000)
        #expect(started.ready.wait(timeout: .now() + 5) == .success)
        let listener = try #require(started.listener)
        let accepted = try #require(try listener.accept())
        let backEnd = ScriptedBackEnd(socket: accepted, answers: [.reply(QEMUBytes.featuresReply)])
        #expect(try session.send(.getFeatures) == .features(QEMUBytes.offeredFeatures))
        _ = try backEnd.finish()
    }

    @Test func connectGivesUpOnAMissingSocketAfterTheTimeout() throws {
        let path = temporarySocketPath()
        var error: FrontEndError?
        let elapsed = ContinuousClock().measure {
            error = frontEndError { () throws(FrontEndError) in try FrontEndSession.connect(path: path, timeoutMilliseconds: 100) }
        }
        guard case .connectFailed(let failedPath, let systemError) = error else {
            Issue.record("expected connectFailed, got \(String(describing: error))")
            return
        }
        #expect(failedPath == path)
        #expect(systemError.errno == ENOENT)
        #expect(elapsed >= .milliseconds(100))
        #expect(error?.description.hasPrefix("cannot connect to the vhost-user back end at \(path): ") == true)
    }

    @Test func connectGivesUpOnAStaleSocketFile() throws {
        let path = temporarySocketPath()
        defer { unlink(path) }
        do {
            _ = try UnixSocket.listen(path: path)  // closed at once: the file stays, nobody listens
        }
        guard case .connectFailed(_, let systemError) = frontEndError({ () throws(FrontEndError) in
            try FrontEndSession.connect(path: path, timeoutMilliseconds: 50)
        }) else {
            Issue.record("expected connectFailed")
            return
        }
        #expect(systemError.errno == ECONNREFUSED)
    }
}

/// Hands a listener created on another thread to the test.
final class ListenerBox: @unchecked Sendable {
    // SAFETY: `listener` is written before `ready` is signalled and read after waiting for it.
    var listener: UnixSocket?
    let ready = DispatchSemaphore(value: 0)
}
