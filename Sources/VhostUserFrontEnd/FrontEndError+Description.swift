import VhostUserProtocol

extension FrontEndError: CustomStringConvertible {
    /// A one-line message naming the request and what went wrong.
    public var description: String {
        switch self {
        case .connectFailed(let path, let error):
            "cannot connect to the vhost-user back end at \(path): \(error)"
        case .transportFailed(let request, let error):
            "\(Self.name(request)): socket error: \(error)"
        case .connectionClosed(let request):
            "\(Self.name(request)): the back end closed the connection"
        case .replyTimeout(let request, let milliseconds):
            "\(Self.name(request)): no complete reply within \(milliseconds) ms (back end silent or stuck)"
        case .invalidReply(let request, let error):
            "\(Self.name(request)): invalid reply: \(error)"
        case .failureAck(let request, let value):
            "\(request.specName): the back end reported failure (ack value \(value))"
        case .notOffered(let gate):
            "the back end does not offer what is required: \(Self.offerText(gate))"
        case .notNegotiated(let request, let missing):
            "\(request.specName) not sent: needs \(missing)"
        case .invalidMessage(let error):
            "message not sent: \(error)"
        case .sessionUnusable(let first):
            "session unusable after an earlier error (\(first)); connect a new session"
        }
    }

    private static func name(_ request: VhostUserRequest?) -> String {
        request?.specName ?? "raw message"
    }

    private static func offerText(_ gate: FeatureGate) -> String {
        switch gate {
        case .protocolFeaturesOffered: "VHOST_USER_F_PROTOCOL_FEATURES (virtio bit 30)"
        case .protocolFeature(let features): "protocol features \(features)"
        case .virtioFeature(let features): "virtio features \(features)"
        }
    }
}
