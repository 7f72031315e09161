extension BackendMessage {
    /// The request code of this message.
    public var request: BackendRequest {
        switch self {
        case .iotlbMsg: .iotlbMsg
        case .configChange: .configChangeMsg
        case .vringHostNotifier: .vringHostNotifierMsg
        case .vringCall: .vringCall
        case .vringErr: .vringErr
        case .sharedObjectAdd: .sharedObjectAdd
        case .sharedObjectRemove: .sharedObjectRemove
        case .sharedObjectLookup: .sharedObjectLookup
        case .shmemMap: .shmemMap
        case .shmemUnmap: .shmemUnmap
        }
    }

    /// How many file descriptors travel with the message: HOST_NOTIFIER carries one unless the
    /// no-fd bit is set, SHMEM_MAP carries one, the rest none.
    public var fileDescriptorCount: Int {
        switch self {
        case .vringHostNotifier(let area): area.vring.fileDescriptorCount
        case .shmemMap: 1
        case .iotlbMsg, .configChange, .vringCall, .vringErr, .sharedObjectAdd,
             .sharedObjectRemove, .sharedObjectLookup, .shmemUnmap:
            0
        }
    }

    /// The payload bytes alone.
    public var payloadBytes: [UInt8] {
        var writer = ByteWriter()
        switch self {
        case .iotlbMsg(let message): message.write(to: &writer)
        case .configChange: break
        case .vringHostNotifier(let area): area.write(to: &writer)
        case .vringCall(let state), .vringErr(let state): state.write(to: &writer)
        case .sharedObjectAdd(let id), .sharedObjectRemove(let id), .sharedObjectLookup(let id):
            id.write(to: &writer)
        case .shmemMap(let mapping), .shmemUnmap(let mapping): mapping.write(to: &writer)
        }
        return writer.bytes
    }

    /// The bytes a back end sends: header (flags 0x1, or 0x9 with `needReply` to ask for a u64
    /// ack, which needs REPLY_ACK) and payload, and how many fds go with them.
    public func encoded(needReply: Bool = false) -> (bytes: [UInt8], fileDescriptorCount: Int) {
        return (MessageHeader.framedRequest(request.rawValue, needReply: needReply, payload: payloadBytes),
                fileDescriptorCount)
    }
}
