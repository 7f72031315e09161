/// What an IOTLB entry lets the device do. The raw values are vhost's `perm` field
/// (`VHOST_ACCESS_RO` = 1, `VHOST_ACCESS_WO` = 2, `VHOST_ACCESS_RW` = 3).
public struct IOMMUPermission: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8

    @inlinable public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// The device may read (read-only when alone).
    public static let read = IOMMUPermission(rawValue: 1)
    /// The device may write (write-only when alone).
    public static let write = IOMMUPermission(rawValue: 2)
    /// The device may read and write.
    public static let readWrite: IOMMUPermission = [.read, .write]

    /// Whether `access` is allowed.
    @inlinable public func allows(_ access: IOMMUAccess) -> Bool {
        switch access {
        case .read: contains(.read)
        case .write: contains(.write)
        }
    }
}
