/// What the device wants to do with the bytes at an IOVA.
public enum IOMMUAccess: Hashable, Sendable, CaseIterable {
    /// The device reads guest memory (a driver-to-device buffer).
    case read
    /// The device writes guest memory (a device-to-driver buffer).
    case write
}
