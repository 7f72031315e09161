/// Access permission of an IOTLB entry (`VHOST_ACCESS_*`).
public enum IOTLBPermission: UInt8, Sendable, CaseIterable {
    case none = 0
    case readOnly = 1
    case writeOnly = 2
    case readWrite = 3
}
