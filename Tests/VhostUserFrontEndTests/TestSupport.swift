#if canImport(Glibc)
import Glibc
#endif
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioSpec

/// The bytes of a front-end message: header (request, flags, size) and payload.
func message(_ request: VhostUserRequest, flags: UInt32 = 0x1, _ payload: [UInt8] = []) -> [UInt8] {
    le32(request.rawValue) + le32(flags) + le32(UInt32(payload.count)) + payload
}

/// The scripted answers to what `negotiate` sends when the back end offers `features` and
/// `protocolFeatures` (GET_QUEUE_NUM answers 4, GET_MAX_MEM_SLOTS 32).
func handshakeAnswers(features: VirtioFeatures, protocolFeatures: ProtocolFeatures) -> [ScriptedAnswer] {
    var answers: [ScriptedAnswer] = [.reply(QEMUBytes.u64Reply(.getFeatures, features.rawValue))]
    if features.contains(.protocolFeatures) {
        answers.append(.reply(QEMUBytes.u64Reply(.getProtocolFeatures, protocolFeatures.rawValue)))
        answers.append(.nothing)  // SET_PROTOCOL_FEATURES
        if protocolFeatures.contains(.multiQueue) {
            answers.append(.reply(QEMUBytes.queueNumReply))
        }
        if protocolFeatures.contains(.configureMemSlots) {
            answers.append(.reply(QEMUBytes.maxMemSlotsReply))
        }
    }
    answers.append(.nothing)  // SET_OWNER
    return answers
}

/// A session that has already negotiated with a back end offering `features` and
/// `protocolFeatures`, whose script continues with `answers`.
///
/// - Returns: the session, the back end, and how many messages the handshake took (the
///   messages a test is about follow them).
func negotiatedSession(
    features: VirtioFeatures = QEMUBytes.offeredFeatures, protocolFeatures: ProtocolFeatures,
    then answers: [ScriptedAnswer], replyTimeoutMilliseconds: Int = 5_000
) throws -> (session: FrontEndSession, backEnd: ScriptedBackEnd, handshakeCount: Int) {
    let handshake = handshakeAnswers(features: features, protocolFeatures: protocolFeatures)
    let (session, backEnd) = try ScriptedBackEnd.connected(
        handshake + answers, replyTimeoutMilliseconds: replyTimeoutMilliseconds)
    try session.negotiate(wanted: features, wantedProtocol: FrontEndSession.qemu72ProtocolFeatures)
    return (session, backEnd, handshake.count)
}

/// The error `body` throws as a `FrontEndError`, or nil if it succeeds.
func frontEndError<T>(_ body: () throws(FrontEndError) -> T) -> FrontEndError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// A socket path unique to this process and call, in /tmp.
func temporarySocketPath() -> String {
    "/tmp/vhost-user-frontend-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
}
