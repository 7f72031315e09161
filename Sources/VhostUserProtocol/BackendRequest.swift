/// The back-end → front-end message types (`VHOST_USER_BACKEND_*`, formerly `SLAVE`),
/// sent on the socket passed with SET_BACKEND_REQ_FD.
///
/// QEMU 7.2 handles only codes 1...3. SHMEM_MAP/UNMAP (9, 10) come from a patch series that
/// is not in any released QEMU at the time of writing.
public enum BackendRequest: UInt32, Sendable, CaseIterable {
    case iotlbMsg = 1
    case configChangeMsg = 2
    case vringHostNotifierMsg = 3
    case vringCall = 4
    case vringErr = 5
    case sharedObjectAdd = 6
    case sharedObjectRemove = 7
    case sharedObjectLookup = 8
    case shmemMap = 9
    case shmemUnmap = 10
}
