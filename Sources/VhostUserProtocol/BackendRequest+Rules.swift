extension BackendRequest {
    /// The exact payload length of this back-end request.
    var payloadByteCount: Int {
        switch self {
        case .iotlbMsg: IOTLBMessage.byteCount
        case .configChangeMsg: 0
        case .vringHostNotifierMsg: VringAreaDescription.byteCount
        case .vringCall, .vringErr: VringState.byteCount
        case .sharedObjectAdd, .sharedObjectRemove, .sharedObjectLookup: SharedObjectID.byteCount
        case .shmemMap, .shmemUnmap: SharedMemoryMapping.byteCount
        }
    }
}
