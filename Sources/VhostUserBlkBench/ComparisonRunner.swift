#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Runs every case on both back ends with the same front end, alternating which goes first,
/// each run on a freshly started back end.
public struct ComparisonRunner: Sendable {
    public var ourDaemon: String
    public var qemuStorageDaemon: String
    /// qemu-img with the libblkio driver, for the `qemuImgBench` cases.
    public var qemuImg: String?
    public var cases: [ComparisonCase]
    public var repetitions: Int
    /// Where the image and sockets go: a tmpfs, so the image is served from memory.
    public var directory: String
    public var imageBytes: UInt64 = 512 << 20
    /// Queues both back ends offer (the workloads use up to this many).
    public var queues = 4
    public var machine = ""
    public var command = ""
    /// A directory on the machine's disk for the disk cases' image (not tmpfs).
    public var diskDirectory: String?
    public var diskImageBytes: UInt64 = 4 << 30
    /// fio, the reference for the disk cases.
    public var fio: String?
    /// qemu-img, to make the qcow2 cases' images.
    public var imageTool = "/usr/bin/qemu-img"
    /// The virtual size of the empty qcow2 image the allocating cases write into.
    public var emptyQcow2Bytes: UInt64 = 64 << 30

    public init(ourDaemon: String, qemuStorageDaemon: String, cases: [ComparisonCase], repetitions: Int, directory: String) {
        self.ourDaemon = ourDaemon
        self.qemuStorageDaemon = qemuStorageDaemon
        self.cases = cases
        self.repetitions = repetitions
        self.directory = directory
    }

    public func run(log: (String) -> Void) throws(BenchError) -> BackEndComparison {
        let image = directory + "/compare.img"
        try Self.makeImage(at: image, bytes: imageBytes)
        defer { unlink(image) }
        let diskImage = diskDirectory.map { $0 + "/compare-disk.img" }
        if cases.contains(where: \.onDisk) {
            guard let diskImage else { throw .invalidWorkload("the disk cases need a directory on the machine's disk") }
            guard fio != nil else { throw .invalidWorkload("the disk cases need fio") }
            log("writing a \(diskImageBytes >> 30) GiB image on the disk: \(diskImage)")
            try Self.makeImage(at: diskImage, bytes: diskImageBytes)
        }
        defer { if let diskImage { unlink(diskImage) } }
        let allocatedQcow2 = directory + "/compare.qcow2"
        let emptyQcow2 = directory + "/compare-empty.qcow2"
        if cases.contains(where: { $0.image == .qcow2Allocated }) {
            log("converting the image to qcow2: \(allocatedQcow2)")
            try runTool([imageTool, "convert", "-O", "qcow2", image, allocatedQcow2])
        }
        defer {
            unlink(allocatedQcow2)
            unlink(emptyQcow2)
            if let diskDirectory { unlink(diskDirectory + "/compare-disk-empty.qcow2") }
        }
        var rows: [BackEndComparison.Row] = []
        var resident: [String: [UInt64]] = [:]
        for comparisonCase in cases {
            var row = BackEndComparison.Row(comparisonCase: comparisonCase, samples: [:])
            for repetition in 0..<repetitions {
                let order: [ComparedBackEnd] = repetition % 2 == 0 ? [.ours, .qemuStorageDaemon] : [.qemuStorageDaemon, .ours]
                // fio is the reference for the raw disk rows (it has no qcow2).
                if comparisonCase.onDisk, comparisonCase.image == .raw, let fio, let diskImage {
                    try Self.dropPageCache()
                    let report = try FioReference(fio: fio, image: diskImage, workload: comparisonCase.workload).run()
                    row.samples[FioReference.key, default: []].append(report)
                    log(String(format: "%@ | fio | run %d: %.1fk IOPS, p99 %.0f us", comparisonCase.name, repetition + 1,
                               report.iops / 1000, report.latency.p99))
                }
                for backEnd in order {
                    let socket = directory + "/\(backEnd.rawValue).sock"
                    let disk: ComparedBackEnd.Disk
                    if comparisonCase.nullDisk {
                        disk = .null(bytes: imageBytes)
                    } else if comparisonCase.onDisk, comparisonCase.image == .qcow2Empty, let diskDirectory {
                        let path = diskDirectory + "/compare-disk-empty.qcow2"
                        unlink(path)
                        try runTool([imageTool, "create", "-q", "-f", "qcow2", path, "\(emptyQcow2Bytes)"])
                        try Self.dropPageCache()
                        disk = .directQcow2(path: path)
                    } else if comparisonCase.onDisk, let diskImage {
                        try Self.dropPageCache()
                        disk = .directImage(path: diskImage)
                    } else if comparisonCase.image == .qcow2Allocated {
                        disk = .qcow2(path: allocatedQcow2)
                    } else if comparisonCase.image == .qcow2Empty {
                        unlink(emptyQcow2)
                        try runTool([imageTool, "create", "-q", "-f", "qcow2", emptyQcow2, "\(emptyQcow2Bytes)"])
                        disk = .qcow2(path: emptyQcow2)
                    } else {
                        disk = .image(path: image)
                    }
                    let executable = backEnd == .ours ? ourDaemon : qemuStorageDaemon
                    let process = try BackEndProcess(
                        arguments: backEnd.arguments(executable: executable, socket: socket, disk: disk, queues: queues),
                        socket: socket, logPath: directory + "/\(backEnd.rawValue).log")
                    defer { process.stop() }
                    usleep(200_000)  // let it settle before reading its idle footprint
                    if let bytes = process.residentBytes { resident[backEnd.rawValue, default: []].append(bytes) }
                    let report: BenchReport
                    switch comparisonCase.frontEnd {
                    case .bench:
                        report = try BenchRunner(socketPath: socket, workload: comparisonCase.workload, label: backEnd.label,
                                                 backEndPID: process.pid).run()
                    case .qemuImgBench:
                        guard let qemuImg else { throw .invalidWorkload("\(comparisonCase.name) needs qemu-img with libblkio") }
                        report = try QemuImgBench(qemuImg: qemuImg, socketPath: socket, workload: comparisonCase.workload,
                                                  label: backEnd.label, backEndPID: process.pid).run()
                    }
                    guard report.clean else {
                        throw .backEndMisbehaved(queue: 0, "\(backEnd.label) failed \(report.ioErrors) requests in \(comparisonCase.name)")
                    }
                    row.samples[backEnd.rawValue, default: []].append(report)
                    log(String(format: "%@ | %@ | run %d: %.1fk IOPS, p99 %@",
                               comparisonCase.name, backEnd.label, repetition + 1, report.iops / 1000,
                               comparisonCase.frontEnd == .bench ? String(format: "%.0f us", report.latency.p99) : "not measured"))
                }
            }
            rows.append(row)
        }
        var comparison = BackEndComparison(rows: rows, idleResidentBytes: resident, machine: machine, command: command,
                                           repetitions: repetitions, seconds: cases.first.map { workloadSeconds($0.workload) } ?? 0,
                                           imageBytes: imageBytes)
        comparison.diskImageBytes = cases.contains(where: \.onDisk) ? diskImageBytes : 0
        return comparison
    }

    /// Runs a tool to its end; a failure is the comparison's.
    private func runTool(_ arguments: [String]) throws(BenchError) {
        let (status, output) = try runCapturingOutput(arguments[0], Array(arguments.dropFirst()))
        guard status == 0 else {
            throw .deviceUnsuitable("\(arguments.joined(separator: " ")): \(String(decoding: output, as: UTF8.self))")
        }
    }

    private func workloadSeconds(_ workload: Workload) -> Double {
        if case .seconds(let seconds) = workload.limit { return seconds }
        return 0
    }

    /// Writes back and drops the page cache, so a disk case reads from the disk.
    static func dropPageCache() throws(BenchError) {
        sync()
        let fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .deviceUnsuitable("dropping the page cache needs root (/proc/sys/vm/drop_caches): errno \(errno)") }
        defer { close(fd) }
        guard write(fd, "3\n", 2) == 2 else { throw .deviceUnsuitable("cannot drop the page cache: errno \(errno)") }
    }

    /// An image full of non-zero bytes, so reads copy real pages rather than holes.
    static func makeImage(at path: String, bytes: UInt64) throws(BenchError) {
        let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .deviceUnsuitable("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var state: UInt64 = 0x1234_5678_9ABC_DEF1
        for index in chunk.indices {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            chunk[index] = UInt8(truncatingIfNeeded: state)
        }
        var written: UInt64 = 0
        while written < bytes {
            let result = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard result > 0 else { throw .deviceUnsuitable("cannot write \(path): errno \(errno)") }
            written += UInt64(result)
        }
    }
}
