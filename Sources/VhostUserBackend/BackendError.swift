import VhostSystem
import VhostUserProtocol
import VirtioCore

/// Errors of the back-end framework. Each knows its consequence for the connection.
public enum BackendError: Error, CustomStringConvertible, Sendable {
    /// The message itself is malformed or not allowed now (decoder verdict).
    case malformedMessage(ProtocolError)
    /// A system call on the connection failed (the peer went away, a receive timed out...).
    case connection(SystemError)
    /// The peer attached more descriptors than the kernel buffer holds (MSG_CTRUNC).
    case descriptorsTruncated
    /// The memory table could not be built or mapped.
    case memoryTable(MemoryError)
    /// A well-formed request that contradicts the connection state.
    case invalidState(request: VhostUserRequest, reason: String)
    /// A well-formed request with a value the back end does not accept.
    case invalidValue(request: VhostUserRequest, reason: String)
    /// A request this back end does not implement (never offered, but the decoder let it through).
    case unsupportedRequest(VhostUserRequest)
    /// A queue worker did not answer a command in time.
    case workerUnresponsive(queue: Int)
    /// The worker thread or its resources could not be created.
    case workerStartFailed(SystemError)
    /// The request would take `resource` past the connection's limit (`ConnectionLimits`).
    case limitExceeded(request: VhostUserRequest, resource: String, limit: UInt64, requested: UInt64)

    public enum Consequence: Sendable {
        /// Answer with a failure ack when the front end asked for one, and keep serving.
        case refuseRequest
        /// Log, close the connection and wait for the next front end.
        case closeConnection
    }

    public var consequence: Consequence {
        switch self {
        case .unsupportedRequest, .invalidValue:
            .refuseRequest
        case .malformedMessage, .connection, .descriptorsTruncated, .memoryTable, .invalidState, .limitExceeded,
             .workerUnresponsive, .workerStartFailed:
            .closeConnection
        }
    }

    public var description: String {
        switch self {
        case .malformedMessage(let error): "malformed message: \(error)"
        case .connection(let error): "connection: \(error)"
        case .descriptorsTruncated: "too many file descriptors attached to one message"
        case .memoryTable(let error): "memory table: \(error)"
        case .invalidState(let request, let reason): "\(request) refused: \(reason)"
        case .invalidValue(let request, let reason): "\(request) refused: \(reason)"
        case .unsupportedRequest(let request): "\(request) is not supported by this back end"
        case .workerUnresponsive(let queue): "queue \(queue) worker did not answer in time"
        case .workerStartFailed(let error): "cannot start a queue worker: \(error)"
        case .limitExceeded(let request, let resource, let limit, let requested):
            "\(request) refused: \(requested == .max ? "more than 2^64" : "\(requested)") \(resource) exceed the limit of \(limit)"
        }
    }
}
