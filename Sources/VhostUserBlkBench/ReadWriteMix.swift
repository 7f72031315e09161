/// Which requests a workload sends.
public enum ReadWriteMix: Sendable, Equatable, Codable {
    case read
    case write
    /// Reads with probability `readPercent` / 100, writes otherwise.
    case mixed(readPercent: Int)

    /// The share of reads, 0 to 100.
    public var readPercent: Int {
        switch self {
        case .read: 100
        case .write: 0
        case .mixed(let percent): percent
        }
    }

    /// fio-like name: read, write, rw70 (70 % reads).
    public var name: String {
        switch self {
        case .read: "read"
        case .write: "write"
        case .mixed(let percent): "rw\(percent)"
        }
    }
}
