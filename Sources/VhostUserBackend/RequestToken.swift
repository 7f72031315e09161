/// One request of a queue from its submission to its completion: what a handler keeps to
/// complete the request later. Its head is the chain's, unique among the queue's outstanding
/// requests.
public struct RequestToken: Hashable, Sendable {
    public let head: UInt16

    public init(head: UInt16) {
        self.head = head
    }
}

/// What `submit` did with a request.
public enum RequestProgress: Equatable, Sendable {
    /// Done: this many bytes were written into the chain's device-writable buffers.
    case completed(writtenLength: UInt32)
    /// The handler completes it later, through `reapCompletions`.
    case inFlight
}
