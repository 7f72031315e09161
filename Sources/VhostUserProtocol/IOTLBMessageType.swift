/// The type of an IOTLB message (`VHOST_IOTLB_*`, linux/vhost_types.h).
///
/// The front end sends UPDATE and INVALIDATE on the main socket; the back end sends MISS and
/// ACCESS_FAIL on its channel. BATCH_BEGIN/END exist in the kernel header but are not used by
/// vhost-user; they parse, and the decoders reject them as unexpected in either direction.
public enum IOTLBMessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case miss = 1
    case update = 2
    case invalidate = 3
    case accessFail = 4
    case batchBegin = 5
    case batchEnd = 6

    public var description: String {
        switch self {
        case .miss: "MISS"
        case .update: "UPDATE"
        case .invalidate: "INVALIDATE"
        case .accessFail: "ACCESS_FAIL"
        case .batchBegin: "BATCH_BEGIN"
        case .batchEnd: "BATCH_END"
        }
    }
}
