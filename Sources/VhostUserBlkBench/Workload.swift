/// What one benchmark run does: fio's vocabulary where it has one.
public struct Workload: Sendable, Equatable, Codable {
    public var pattern: AccessPattern = .random
    public var mix: ReadWriteMix = .read
    /// Bytes per request: a multiple of 512.
    public var blockSize: Int = 4096
    /// Requests in flight per queue.
    public var queueDepth: Int = 32
    /// Virtqueues driven, each by its own thread.
    public var queueCount: Int = 1
    public var limit: RunLimit = .seconds(5)
    /// Write every block of the span with a known pattern, then read it all back and count
    /// mismatched blocks. Ignores `mix` and `limit`.
    public var verify: Bool = false
    /// With `verify`: only read back and check what an earlier verify run with the same seed
    /// and span wrote (for example before the back end restarted).
    public var verifyOnly: Bool = false
    public var completion: CompletionMode = .eventfd
    /// Negotiate VIRTIO_RING_F_EVENT_IDX if offered.
    public var eventIndex: Bool = true
    /// Put each request's three buffers in an indirect table (one ring descriptor each).
    /// Needs VIRTIO_RING_F_INDIRECT_DESC; required when queueDepth × 3 exceeds the ring.
    public var indirect: Bool = false
    /// Virtqueue size (a power of two); QEMU's vhost-user-blk default is 128.
    public var queueSize: Int = 128
    /// Bytes of the device the requests touch, from offset 0; nil for the whole device.
    public var span: UInt64?
    /// Play a guest behind a vIOMMU: IOVAs everywhere (needs ACCESS_PLATFORM, BACKEND_REQ).
    public var iommu: IOMMUMode = .off
    /// Seeds offsets and verify patterns, so a run can be repeated.
    public var seed: UInt64 = 1

    public init() {}

    /// Descriptors one request takes in the ring.
    var descriptorsPerRequest: Int { indirect ? 1 : 3 }

    /// Checks the values that do not depend on the device.
    public func validate() throws(BenchError) {
        guard blockSize > 0, blockSize % 512 == 0, blockSize <= 1 << 24 else {
            throw .invalidWorkload("block size \(blockSize) is not a positive multiple of 512 up to 16 MiB")
        }
        guard (1...256).contains(queueCount) else { throw .invalidWorkload("queue count \(queueCount) is not 1 to 256") }
        guard queueSize >= 2, queueSize <= 32768, queueSize & (queueSize - 1) == 0 else {
            throw .invalidWorkload("queue size \(queueSize) is not a power of two from 2 to 32768")
        }
        guard queueDepth >= 1, queueDepth * descriptorsPerRequest <= queueSize else {
            throw .invalidWorkload(
                "queue depth \(queueDepth) needs \(queueDepth * descriptorsPerRequest) descriptors, the ring has \(queueSize)"
                    + (indirect ? "" : " (use indirect descriptors or a larger queue size)"))
        }
        switch limit {
        case .seconds(let seconds) where !(seconds > 0 && seconds <= 86_400):
            throw .invalidWorkload("duration \(seconds) s is not in (0, 86400]")
        case .requests(let count) where count < 1:
            throw .invalidWorkload("request count \(count) is not positive")
        default:
            break
        }
        guard (0...100).contains(mix.readPercent) else { throw .invalidWorkload("read percentage \(mix.readPercent) is not 0 to 100") }
        if let span, span < UInt64(blockSize) { throw .invalidWorkload("span \(span) is smaller than one block") }
    }

    /// One line: "randread bs=4096 qd=32 queues=1 eventfd".
    public var summary: String {
        let kind = verify ? (verifyOnly ? "verify-only" : "verify") : (pattern == .random ? "rand" : "seq") + mix.name
        let limitText: String = switch limit {
        case .seconds(let seconds): "\(seconds)s"
        case .requests(let count): "\(count) requests"
        }
        return "\(kind) bs=\(blockSize) qd=\(queueDepth) queues=\(queueCount) \(completion.rawValue)"
            + (indirect ? " indirect" : "") + (iommu == .off ? "" : " iommu=\(iommu.rawValue)")
            + (verify ? "" : " \(limitText)")
    }
}
