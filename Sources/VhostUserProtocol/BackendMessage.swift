/// A validated back-end → front-end message, sent on the channel set up with
/// SET_BACKEND_REQ_FD: one case per `BackendRequest`.
public enum BackendMessage: Equatable, Hashable, Sendable {
    /// MISS (the back end needs a translation for `iova` with `permission`) or ACCESS_FAIL.
    case iotlbMsg(IOTLBMessage)
    /// The device's config space changed; the front end re-reads it with GET_CONFIG.
    case configChange
    /// Map (fd attached) or unmap (no-fd bit) a doorbell page for a vring.
    case vringHostNotifier(VringAreaDescription)
    /// In-band used-buffer notification (INBAND_NOTIFICATIONS).
    case vringCall(VringState)
    /// In-band error notification (INBAND_NOTIFICATIONS).
    case vringErr(VringState)
    case sharedObjectAdd(SharedObjectID)
    case sharedObjectRemove(SharedObjectID)
    case sharedObjectLookup(SharedObjectID)
    /// Map part of the attached fd into a VIRTIO shared memory region.
    case shmemMap(SharedMemoryMapping)
    case shmemUnmap(SharedMemoryMapping)
}
