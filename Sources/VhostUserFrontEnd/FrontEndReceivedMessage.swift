import VhostSystem
import VhostUserProtocol

/// One message as read off the socket, before any validation beyond framing.
struct FrontEndReceivedMessage {
    /// The header fields as sent (only `size` has been checked, against the payload limit).
    var header: MessageHeader
    /// Exactly `header.size` bytes.
    var payload: [UInt8]
    /// Every descriptor that arrived with the header or the payload.
    var descriptors: [OwnedFileDescriptor]
}
