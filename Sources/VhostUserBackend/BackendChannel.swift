#if canImport(Glibc)
import Glibc
#endif
import IOMMUModel
import Logging
import VhostSystem
import VhostUserProtocol

/// The back-end channel (SET_BACKEND_REQ_FD): the socket on which the back end sends requests
/// to the front end. Used for IOTLB MISS, sent with NEED_REPLY (REPLY_ACK is negotiated
/// whenever ACCESS_PLATFORM is, QEMU 7.2 insists on it).
///
/// Queue workers send MISSes themselves, from their own threads; the channel serialises the
/// sends with a lock. Nobody ever blocks on the ack: QEMU answers a MISS only after the UPDATE
/// it sends on the main socket has been answered, and the control plane must stay free to
/// answer it. The worker that missed waits for the UPDATE (delivered to it as a new IOTLB
/// snapshot), not for the ack; acks are read without blocking whenever a worker sends or
/// retries, and a failed ack (QEMU could not translate the IOVA) is logged.
final class BackendChannel: Sendable {
    // `socket` is used only with `state` locked.
    private let socket: UnixSocket
    private let logger: Logger
    private let state = Locked<State>(State())

    struct State {
        var pending: [UInt8] = []
        var missesSent = 0
        var acksReceived = 0
        var failedAcks = 0
        var broken = false
    }

    /// How long a send may block (a front end not reading its channel).
    static let sendTimeoutMilliseconds = 1_000

    init(socket: UnixSocket, logger: Logger) {
        self.socket = socket
        self.logger = logger
        try? socket.setSendTimeout(milliseconds: Self.sendTimeoutMilliseconds)
    }

    /// Sends an IOTLB MISS for `iova` with NEED_REPLY. - Returns: whether it was sent.
    @discardableResult
    func sendMiss(iova: UInt64, access: IOMMUAccess) -> Bool {
        let message = BackendMessage.iotlbMsg(IOTLBMessage(
            iova: iova, size: 0, userAddress: 0, permission: access == .write ? .writeOnly : .readOnly, type: .miss))
        let bytes = message.encoded(needReply: true).bytes
        return state.withLock { state in
            collectAcks(&state)
            guard !state.broken else { return false }
            logger.debug("IOTLB MISS", metadata: ["iova": "0x\(String(iova, radix: 16))", "access": "\(access)"])
            do {
                try socket.send(bytes)
                state.missesSent += 1
                return true
            } catch {
                state.broken = true
                logger.error("cannot send an IOTLB MISS on the back-end channel", metadata: ["error": "\(error)"])
                return false
            }
        }
    }

    /// Reads whatever acks have arrived, without blocking.
    func pollAcks() {
        state.withLock { collectAcks(&$0) }
    }

    /// (MISSes sent, acks received, failed acks).
    var counts: (misses: Int, acks: Int, failedAcks: Int) {
        state.withLock { ($0.missesSent, $0.acksReceived, $0.failedAcks) }
    }

    func shutdown() {
        socket.shutdown()
    }

    private func collectAcks(_ state: inout State) {
        guard !state.broken else { return }
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let received: Int
            do {
                received = try buffer.withUnsafeMutableBytes { raw throws(SystemError) in
                    try socket.receive(into: raw, dontWait: true).byteCount
                }
            } catch let error as SystemError {
                // EAGAIN: nothing more for now. Anything else: stop reading, keep sending.
                if error.errno != EAGAIN && error.errno != EWOULDBLOCK {
                    state.broken = true
                    logger.warning("back-end channel failed", metadata: ["error": "\(error)"])
                }
                break
            } catch {
                state.broken = true
                break
            }
            if received == 0 {
                state.broken = true
                break
            }
            state.pending += buffer[0..<received]
        }
        let ackSize = MessageHeader.byteCount + BackendAck.payloadByteCount
        while state.pending.count >= ackSize {
            let chunk = Array(state.pending[0..<ackSize])
            state.pending.removeFirst(ackSize)
            let ack: BackendAck? = chunk.withUnsafeBytes { raw in
                guard let header = try? MessageHeader(parsing: UnsafeRawBufferPointer(rebasing: raw[0..<MessageHeader.byteCount]))
                else { return nil }
                return try? BackendMessageDecoder.decodeAck(
                    header: header, payload: UnsafeRawBufferPointer(rebasing: raw[MessageHeader.byteCount...]),
                    fileDescriptorCount: 0, answering: .iotlbMsg)
            }
            guard let ack else {
                state.broken = true
                logger.warning("malformed ack on the back-end channel; it is no longer read")
                state.pending = []
                return
            }
            state.acksReceived += 1
            if !ack.isSuccess {
                state.failedAcks += 1
                logger.warning("the front end could not resolve an IOTLB MISS", metadata: ["ack": "\(ack.value)"])
            }
        }
    }
}
