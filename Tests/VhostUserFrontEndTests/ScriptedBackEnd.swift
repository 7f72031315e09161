#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol

/// One message the front end sent, exactly as the back end read it off the socket.
struct ReceivedMessage: Sendable {
    /// Header and payload.
    let bytes: [UInt8]
    /// The descriptors that arrived with it, open in this process.
    let descriptors: [OwnedFileDescriptor]

    /// The file sizes of the received descriptors (fstat).
    func descriptorSizes() throws -> [UInt64] {
        try descriptors.map { try $0.size() }
    }
}

/// What the scripted back end does after reading one message.
enum ScriptedAnswer: Sendable {
    /// Writes these bytes, with these descriptors attached.
    case reply([UInt8], descriptors: [Int32] = [])
    /// Writes nothing (a request without a reply, or a silent back end).
    case nothing
    /// Closes the connection.
    case close
}

/// A back end on a thread that reads one message per scripted answer from its end of a
/// socketpair, records it, and answers as scripted. It knows nothing about vhost-user beyond
/// framing: the answers are fixture bytes.
final class ScriptedBackEnd: @unchecked Sendable {
    // SAFETY: `received` and `failure` are written only by the back-end thread before it
    // signals `finished`, and read only after `finish()` has waited for that signal.
    let socket: UnixSocket
    private let answers: [ScriptedAnswer]
    private let finished = DispatchSemaphore(value: 0)
    private var received: [ReceivedMessage] = []
    private var failure: String?

    /// The back end for one test: a connected session and this back end on the other end.
    static func connected(
        _ answers: [ScriptedAnswer], replyTimeoutMilliseconds: Int = 5_000
    ) throws -> (FrontEndSession, ScriptedBackEnd) {
        let (frontSocket, backSocket) = try UnixSocket.pair()
        let session = try FrontEndSession(socket: frontSocket, replyTimeoutMilliseconds: replyTimeoutMilliseconds)
        return (session, ScriptedBackEnd(socket: backSocket, answers: answers))
    }

    init(socket: UnixSocket, answers: [ScriptedAnswer]) {
        self.socket = socket
        self.answers = answers
        // A test that fails before sending everything must not leave this thread blocked.
        try? socket.setReceiveTimeout(milliseconds: 5_000)
        let thread = Thread { [self] in run() }
        thread.name = "scripted back end"
        thread.start()
    }

    /// Waits for the script to end and returns every message read, in order.
    func finish() throws -> [ReceivedMessage] {
        guard finished.wait(timeout: .now() + 10) == .success else {
            throw ScriptFailure(description: "the scripted back end did not finish")
        }
        if let failure {
            throw ScriptFailure(description: failure)
        }
        return received
    }

    /// Whether the front end sent nothing more than what the script read.
    func nothingPending() -> Bool {
        var byte: UInt8 = 0
        let result: Result<UnixSocket.Received, SystemError> = withUnsafeMutableBytes(of: &byte) { buffer in
            Result { () throws(SystemError) in try socket.receive(into: buffer, dontWait: true) }
        }
        if case .failure(let error) = result, error.errno == EAGAIN {
            return true
        }
        return false
    }

    private func run() {
        defer { finished.signal() }
        do {
            for answer in answers {
                received.append(try readMessage())
                switch answer {
                case .reply(let bytes, let descriptors):
                    try socket.send(bytes, descriptors: descriptors)
                case .nothing:
                    break
                case .close:
                    socket.shutdown()
                }
            }
        } catch {
            failure = "scripted back end: \(error) after \(received.count) messages"
        }
    }

    private func readMessage() throws -> ReceivedMessage {
        var header = [UInt8](repeating: 0, count: MessageHeader.byteCount)
        let headerPart = try header.withUnsafeMutableBytes { try socket.receiveExactly(into: $0) }
        let size = Int(le32(header, at: 8))
        guard size <= MessageHeader.maximumPayloadSize else {
            throw ScriptFailure(description: "front end sent a payload size of \(size)")
        }
        var payload = [UInt8](repeating: 0, count: size)
        var descriptors = headerPart.descriptors
        if size > 0 {
            descriptors += try payload.withUnsafeMutableBytes { try socket.receiveExactly(into: $0) }.descriptors
        }
        return ReceivedMessage(bytes: header + payload, descriptors: descriptors)
    }
}

struct ScriptFailure: Error, CustomStringConvertible {
    let description: String
}
