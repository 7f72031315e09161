/// One row of the comparison: a workload on a kind of disk, driven by a front end.
public struct ComparisonCase: Sendable, Codable, Equatable {
    /// The client that drives the back ends.
    public enum FrontEnd: String, Sendable, Codable {
        /// `vhost-user-blk-bench` (this package's `BenchRunner`): latencies, any pattern.
        case bench
        /// `qemu-img bench` through QEMU's libblkio driver: sequential, wall time only.
        case qemuImgBench
    }

    public var name: String
    public var workload: Workload
    /// True: a null disk; false: the image.
    public var nullDisk: Bool
    public var frontEnd: FrontEnd
    /// The image on the machine's disk, served with O_DIRECT (ours `--cache=none`, q-s-d
    /// `cache.direct=on,aio=io_uring`), the page cache dropped before each run, and fio on
    /// the same file as the reference; otherwise the image on tmpfs.
    public var onDisk: Bool
    /// The image's format (nil: raw).
    public var imageKind: ImageKind?

    /// What the image file holds.
    public enum ImageKind: String, Sendable, Codable {
        case raw
        /// qcow2 (64 KiB clusters) converted from the raw image: every cluster allocated.
        case qcow2Allocated = "qcow2-allocated"
        /// A qcow2 image made empty before each run (64 GiB virtual): random writes allocate.
        case qcow2Empty = "qcow2-empty"
    }

    public var image: ImageKind { imageKind ?? .raw }

    public init(name: String, workload: Workload, nullDisk: Bool, frontEnd: FrontEnd = .bench, onDisk: Bool = false,
                image: ImageKind = .raw) {
        self.name = name
        self.workload = workload
        self.nullDisk = nullDisk
        self.frontEnd = frontEnd
        self.onDisk = onDisk
        imageKind = image == .raw ? nil : image
    }

    /// The rows issue 5 asks for: null back end, and on a tmpfs image 4 KiB random reads at
    /// QD1 and QD32, random writes at QD32, 4 queues at QD32, 64 KiB sequential reads; and
    /// issue 12's: 4 KiB sequential reads and writes at QD32 from `qemu-img bench` (libblkio);
    /// and issue 14's, on the machine's disk with O_DIRECT: 4 KiB random reads at QD1 and QD32,
    /// random writes at QD32, 64 KiB sequential reads, 4 queues; and issue 15's, qcow2 through
    /// the page cache: 4 KiB random reads and writes at QD1 and QD32 on allocated clusters, and
    /// random writes that allocate (a fixed number of requests, so the image stays small), also
    /// on the machine's disk with O_DIRECT, where an allocating write waits for the disk.
    public static func standard(seconds: Double) -> [ComparisonCase] {
        func workload(_ pattern: AccessPattern, _ mix: ReadWriteMix, blockSize: Int = 4096, depth: Int = 32, queues: Int = 1,
                      requests: Int? = nil) -> Workload {
            var workload = Workload()
            workload.pattern = pattern
            workload.mix = mix
            workload.blockSize = blockSize
            workload.queueDepth = depth
            workload.queueCount = queues
            workload.limit = requests.map { .requests($0) } ?? .seconds(seconds)
            return workload
        }
        return [
            ComparisonCase(name: "null, 4k randread QD32", workload: workload(.random, .read), nullDisk: true),
            ComparisonCase(name: "4k randread QD1", workload: workload(.random, .read, depth: 1), nullDisk: false),
            ComparisonCase(name: "4k randread QD32", workload: workload(.random, .read), nullDisk: false),
            ComparisonCase(name: "4k randwrite QD32", workload: workload(.random, .write), nullDisk: false),
            ComparisonCase(name: "4k randread QD32, 4 queues", workload: workload(.random, .read, queues: 4), nullDisk: false),
            ComparisonCase(name: "64k seqread QD32", workload: workload(.sequential, .read, blockSize: 65536), nullDisk: false),
            ComparisonCase(name: "libblkio: 4k seqread QD32", workload: workload(.sequential, .read), nullDisk: false,
                           frontEnd: .qemuImgBench),
            ComparisonCase(name: "libblkio: 4k seqwrite QD32", workload: workload(.sequential, .write), nullDisk: false,
                           frontEnd: .qemuImgBench),
            ComparisonCase(name: "disk: 4k randread QD1", workload: workload(.random, .read, depth: 1), nullDisk: false, onDisk: true),
            ComparisonCase(name: "disk: 4k randread QD32", workload: workload(.random, .read), nullDisk: false, onDisk: true),
            ComparisonCase(name: "disk: 4k randwrite QD32", workload: workload(.random, .write), nullDisk: false, onDisk: true),
            ComparisonCase(name: "disk: 64k seqread QD32", workload: workload(.sequential, .read, blockSize: 65536), nullDisk: false,
                           onDisk: true),
            ComparisonCase(name: "disk: 4k randread QD32, 4 queues", workload: workload(.random, .read, queues: 4), nullDisk: false,
                           onDisk: true),
            ComparisonCase(name: "qcow2: 4k randread QD1", workload: workload(.random, .read, depth: 1), nullDisk: false,
                           image: .qcow2Allocated),
            ComparisonCase(name: "qcow2: 4k randread QD32", workload: workload(.random, .read), nullDisk: false, image: .qcow2Allocated),
            ComparisonCase(name: "qcow2: 4k randwrite QD1", workload: workload(.random, .write, depth: 1), nullDisk: false,
                           image: .qcow2Allocated),
            ComparisonCase(name: "qcow2: 4k randwrite QD32", workload: workload(.random, .write), nullDisk: false, image: .qcow2Allocated),
            ComparisonCase(name: "qcow2 allocating: 4k randwrite QD1", workload: workload(.random, .write, depth: 1, requests: 4000),
                           nullDisk: false, image: .qcow2Empty),
            ComparisonCase(name: "qcow2 allocating: 4k randwrite QD32", workload: workload(.random, .write, requests: 16000),
                           nullDisk: false, image: .qcow2Empty),
            ComparisonCase(name: "disk qcow2 allocating: 4k randwrite QD32", workload: workload(.random, .write, requests: 16000),
                           nullDisk: false, onDisk: true, image: .qcow2Empty),
        ]
    }
}
