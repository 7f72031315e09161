import VhostSystem
import VhostUserProtocol

/// Everything that can go wrong while a `FrontEndSession` talks to a back end.
///
/// `request` is the message whose reply was awaited, or nil for raw traffic
/// (`sendRaw` / `receiveRawReply`). See `description` for one-line messages.
public enum FrontEndError: Error, Equatable, Sendable {
    /// The socket at `path` could not be connected (after retrying while it was missing or
    /// refusing, until the connect deadline).
    case connectFailed(path: String, SystemError)
    /// A send or receive on the connected socket failed.
    case transportFailed(request: VhostUserRequest?, SystemError)
    /// The back end closed the connection while a message was being sent or its reply awaited.
    case connectionClosed(request: VhostUserRequest?)
    /// No complete reply arrived within `milliseconds`.
    case replyTimeout(request: VhostUserRequest?, milliseconds: Int)
    /// The reply broke a rule `ReplyDecoder` checks (flags, request code, size, fds, echo), or
    /// its header could not even be framed.
    case invalidReply(request: VhostUserRequest?, ProtocolError)
    /// The back end answered `request` with a non-zero u64: a REPLY_ACK failure, or the failure
    /// result of a request whose reply is a u64 (IOTLB_MSG, SET_LOG_BASE, ...).
    case failureAck(request: VhostUserRequest, value: UInt64)
    /// The back end does not offer something the caller requires (`negotiate`).
    case notOffered(FeatureGate)
    /// A convenience step needs `missing`, which this session has not negotiated. Nothing was
    /// sent. (`send` does not check gates: tests use it to send what QEMU would not.)
    case notNegotiated(request: VhostUserRequest, missing: FeatureGate)
    /// The caller's values do not make a valid message. Nothing was sent.
    case invalidMessage(ProtocolError)
    /// An earlier error (a timeout, a closed or failed socket, a reply that could not be framed)
    /// left the byte stream out of step, so a later reply could be paired with the wrong
    /// request. The session refuses further requests; connect a new one.
    indirect case sessionUnusable(after: FrontEndError)
}
