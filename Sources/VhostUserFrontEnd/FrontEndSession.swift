#if canImport(Glibc)
import Glibc
#endif
import VhostSystem
import VhostUserProtocol
import VirtioSpec

/// The front end's side of one vhost-user connection: it sends what QEMU sends and checks
/// every reply with `ReplyDecoder`.
///
/// `send` is the one way requests go out; the convenience steps (`negotiate`, `configureRing`,
/// ...) are built on it. `send` records what the connection negotiates (offered and agreed
/// features, queue count, memory slots), whoever calls it, so a test that sends
/// SET_PROTOCOL_FEATURES by hand gets the same REPLY_ACK handling afterwards.
///
/// Every wait for a reply is bounded by `replyTimeoutMilliseconds`, measured for the whole
/// reply, so a silent or stuck back end is an error instead of a hang. After a timeout, a closed
/// or failed socket, or a reply that cannot be framed, the session refuses further requests
/// (`FrontEndError.sessionUnusable`): a late reply would otherwise be taken for the answer to
/// the next request.
///
/// Not thread-safe: one thread drives a session.
public final class FrontEndSession {
    /// How long `send` waits for a reply unless told otherwise. Generous, because a back end
    /// answers GET_VRING_BASE only once the ring's in-flight requests are done.
    public static let defaultReplyTimeoutMilliseconds = 10_000

    /// The connected socket.
    public let socket: UnixSocket
    /// How long `send` waits for a complete reply.
    public var replyTimeoutMilliseconds: Int

    /// The virtio features from the last GET_FEATURES reply.
    public private(set) var offeredFeatures: VirtioFeatures = []
    /// The protocol features from the last GET_PROTOCOL_FEATURES reply.
    public private(set) var offeredProtocolFeatures: ProtocolFeatures = []
    /// The protocol features from the last SET_PROTOCOL_FEATURES sent (and acknowledged, if an
    /// ack was asked for). REPLY_ACK here makes `needReply` take effect.
    public private(set) var protocolFeatures: ProtocolFeatures = []
    /// The virtio features from the last SET_FEATURES sent.
    public private(set) var acknowledgedFeatures: VirtioFeatures = []
    /// The back end's GET_QUEUE_NUM answer; 1 until one arrives (QEMU's assumption without MQ).
    public private(set) var queueCount: UInt64 = 1
    /// The back end's GET_MAX_MEM_SLOTS answer, nil until one arrives.
    public private(set) var maximumMemorySlots: UInt64?

    /// Waits for the socket to become readable, so every wait has a deadline.
    let readiness: Epoll
    /// The error that put the byte stream out of step, if one did.
    private var unusableReason: FrontEndError?

    /// Takes over a connected socket (for example one end of `UnixSocket.pair()`).
    ///
    /// - Throws: `.transportFailed` if the epoll instance that bounds waits cannot be set up.
    public init(socket: UnixSocket, replyTimeoutMilliseconds: Int = FrontEndSession.defaultReplyTimeoutMilliseconds) throws(FrontEndError) {
        let readiness: Epoll
        do throws(SystemError) {
            readiness = try Epoll(capacity: 1)
            try readiness.add(socket.rawValue, events: .readable, token: 0)
        } catch {
            throw .transportFailed(request: nil, error)
        }
        self.socket = socket
        self.readiness = readiness
        self.replyTimeoutMilliseconds = replyTimeoutMilliseconds
    }

    /// Connects to the back end listening at `path`.
    ///
    /// While the socket file does not exist yet or nobody accepts on it (ENOENT, ECONNREFUSED:
    /// a daemon still starting), it retries every 10 ms until `timeoutMilliseconds` have passed.
    /// Any other error fails at once.
    ///
    /// - Throws: `.connectFailed(path:_:)` with the last error.
    public static func connect(
        path: String, timeoutMilliseconds: Int = 5_000,
        replyTimeoutMilliseconds: Int = FrontEndSession.defaultReplyTimeoutMilliseconds
    ) throws(FrontEndError) -> FrontEndSession {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        while true {
            let socket: UnixSocket
            do throws(SystemError) {
                socket = try UnixSocket.connect(path: path)
            } catch {
                let retryable = error.errno == ENOENT || error.errno == ECONNREFUSED
                guard retryable, ContinuousClock.now < deadline else {
                    throw .connectFailed(path: path, error)
                }
                usleep(10_000)
                continue
            }
            return try FrontEndSession(socket: socket, replyTimeoutMilliseconds: replyTimeoutMilliseconds)
        }
    }

    // MARK: Requests

    /// Sends `message` with `descriptors` attached and returns the validated reply, or nil
    /// when none is expected.
    ///
    /// A reply is awaited when the request has a reply body of its own
    /// (`VhostUserRequest.hasReplyBody`), or when `needReply` is set and REPLY_ACK was
    /// negotiated: then the header carries NEED_REPLY (0x8) and the back end must answer with a
    /// u64 ack. Without REPLY_ACK, `needReply` is ignored, as in QEMU. The descriptors are sent
    /// as given; their number is not checked against the message.
    ///
    /// - Throws: `.invalidReply` (the reply breaks a `ReplyDecoder` rule), `.failureAck` (a
    ///   non-zero u64), `.replyTimeout`, `.connectionClosed`, `.transportFailed`,
    ///   `.sessionUnusable`.
    @discardableResult
    public func send(_ message: FrontEndMessage, descriptors: [Int32] = [], needReply: Bool = false) throws(FrontEndError) -> Reply? {
        try exchange(message, descriptors: descriptors, needReply: needReply)?.reply
    }

    /// `send`, also returning the descriptors that came with the reply (GET_INFLIGHT_FD's
    /// buffer). Dropping them closes them.
    public func exchange(
        _ message: FrontEndMessage, descriptors: [Int32] = [], needReply: Bool = false
    ) throws(FrontEndError) -> (reply: Reply, descriptors: [OwnedFileDescriptor])? {
        if let unusableReason {
            throw .sessionUnusable(after: unusableReason)
        }
        let request = message.request
        let askForAck = needReply && protocolFeatures.contains(.replyAck)
        let bytes = message.encoded(needReply: askForAck).bytes
        try keepingStep { () throws(FrontEndError) in
            try write(bytes, descriptors: descriptors, request: request)
        }
        guard request.hasReplyBody || askForAck else {
            record(message, reply: nil)
            return nil
        }
        let timeout = replyTimeoutMilliseconds
        let received = try keepingStep { () throws(FrontEndError) in
            guard let received = try readMessage(request: request, timeoutMilliseconds: timeout) else {
                throw .replyTimeout(request: request, milliseconds: timeout)
            }
            return received
        }
        let decoded: Result<Reply, ProtocolError> = received.payload.withUnsafeBytes { payload in
            Result { () throws(ProtocolError) in
                try ReplyDecoder.decode(
                    header: received.header, payload: payload,
                    fileDescriptorCount: received.descriptors.count, answering: message)
            }
        }
        let reply: Reply
        switch decoded {
        case .success(let value):
            reply = value
        case .failure(let error):
            let failure = FrontEndError.invalidReply(request: request, error)
            if error.isFramingError {
                unusableReason = failure
            }
            throw failure
        }
        if case .ack(_, let value) = reply, value != 0 {
            throw .failureAck(request: request, value: value)
        }
        record(message, reply: reply)
        return (reply, received.descriptors)
    }

    // MARK: Raw traffic for hostile tests

    /// Sends `bytes` as they are, with `descriptors` attached. No validation, no state kept;
    /// read any answer with `receiveRawReply`.
    public func sendRaw(bytes: [UInt8], descriptors: [Int32] = []) throws(FrontEndError) {
        try write(bytes, descriptors: descriptors, request: nil)
    }

    /// Reads one message: a 12-byte header, unvalidated except that its size may not exceed
    /// `MessageHeader.maximumPayloadSize`, then `size` payload bytes.
    ///
    /// - Returns: nil if no byte arrived within `timeoutMilliseconds`.
    /// - Throws: `.replyTimeout` if a message started but did not complete in time,
    ///   `.connectionClosed` if the back end closed the connection, `.invalidReply` with
    ///   `.payloadTooLarge` for a size that cannot be read, `.transportFailed`.
    public func receiveRawReply(
        timeoutMilliseconds: Int
    ) throws(FrontEndError) -> (header: MessageHeader, payload: [UInt8], descriptors: [OwnedFileDescriptor])? {
        try readMessage(request: nil, timeoutMilliseconds: timeoutMilliseconds)
            .map { ($0.header, $0.payload, $0.descriptors) }
    }

    // MARK: Gates and message construction, for the convenience steps

    /// Throws `.notNegotiated` unless this session has negotiated what `request` needs
    /// (`VhostUserRequest.gate`, judged as `MessageDecoder` would).
    func requireNegotiated(_ request: VhostUserRequest) throws(FrontEndError) {
        guard let gate = request.gate else {
            return
        }
        let context = DecodingContext(
            queueCount: UInt32(clamping: queueCount),
            offeredFeatures: offeredFeatures,
            negotiatedProtocolFeatures: protocolFeatures,
            protocolFeaturesEnabled: offeredFeatures.contains(.protocolFeatures),
            negotiatedFeatures: acknowledgedFeatures,
            offeredProtocolFeatures: offeredProtocolFeatures)
        guard context.allows(gate) else {
            throw .notNegotiated(request: request, missing: gate)
        }
    }

    /// Builds a payload value, turning its validation error into `.invalidMessage`.
    func build<Value>(_ body: () throws(ProtocolError) -> Value) throws(FrontEndError) -> Value {
        do throws(ProtocolError) {
            return try body()
        } catch {
            throw .invalidMessage(error)
        }
    }

    /// Sends a request that has a reply body and extracts the part the caller wants.
    func value<Value>(of message: FrontEndMessage, _ extract: (Reply) -> Value?) throws(FrontEndError) -> Value {
        guard let reply = try send(message), let value = extract(reply) else {
            // ReplyDecoder answers a request with a reply body with that body, or throws.
            preconditionFailure("no \(message.request.specName) reply body")
        }
        return value
    }

    // MARK: Private

    /// Runs `body`; an error that leaves the byte stream out of step makes the session unusable.
    private func keepingStep<Value>(_ body: () throws(FrontEndError) -> Value) throws(FrontEndError) -> Value {
        do throws(FrontEndError) {
            return try body()
        } catch {
            unusableReason = error
            throw error
        }
    }

    private func record(_ message: FrontEndMessage, reply: Reply?) {
        if case .setProtocolFeatures(let features) = message {
            protocolFeatures = features
        }
        if case .setFeatures(let features) = message {
            acknowledgedFeatures = features
        }
        guard let reply else {
            return
        }
        switch reply {
        case .features(let features):
            offeredFeatures = features
        case .protocolFeatures(let features):
            offeredProtocolFeatures = features
        case .queueCount(let count):
            queueCount = count
        case .maximumMemorySlots(let count):
            maximumMemorySlots = count
        case .status, .vringBase, .config, .inflight, .ack:
            break
        }
    }

    private func write(_ bytes: [UInt8], descriptors: [Int32], request: VhostUserRequest?) throws(FrontEndError) {
        do throws(SystemError) {
            try socket.send(bytes, descriptors: descriptors)
        } catch {
            if error.errno == EPIPE || error.errno == ECONNRESET {
                throw .connectionClosed(request: request)
            }
            throw .transportFailed(request: request, error)
        }
    }
}
