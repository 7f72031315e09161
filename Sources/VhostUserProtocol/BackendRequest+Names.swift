extension BackendRequest: CustomStringConvertible {
    /// The name the specification uses, e.g. `VHOST_USER_BACKEND_IOTLB_MSG`.
    public var specName: String {
        switch self {
        case .iotlbMsg: "VHOST_USER_BACKEND_IOTLB_MSG"
        case .configChangeMsg: "VHOST_USER_BACKEND_CONFIG_CHANGE_MSG"
        case .vringHostNotifierMsg: "VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG"
        case .vringCall: "VHOST_USER_BACKEND_VRING_CALL"
        case .vringErr: "VHOST_USER_BACKEND_VRING_ERR"
        case .sharedObjectAdd: "VHOST_USER_BACKEND_SHARED_OBJECT_ADD"
        case .sharedObjectRemove: "VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE"
        case .sharedObjectLookup: "VHOST_USER_BACKEND_SHARED_OBJECT_LOOKUP"
        case .shmemMap: "VHOST_USER_BACKEND_SHMEM_MAP"
        case .shmemUnmap: "VHOST_USER_BACKEND_SHMEM_UNMAP"
        }
    }

    public var description: String { specName }
}
