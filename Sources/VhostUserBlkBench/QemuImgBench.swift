#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// `qemu-img bench` through QEMU's libblkio driver (`virtio-blk-vhost-user`) as the front end:
/// a second, independent client, with libblkio's own rings (256 entries) and memory handling.
/// It issues sequential requests (step = request size) of one kind at a queue depth and
/// reports only its wall time, so the report has IOPS and back-end CPU time, no latencies.
public struct QemuImgBench: Sendable {
    /// The qemu-img executable, from a QEMU with the libblkio block driver (Debian 13's).
    public var qemuImg: String
    public var socketPath: String
    public var workload: Workload
    public var label: String
    public var backEndPID: Int32?

    public init(qemuImg: String, socketPath: String, workload: Workload, label: String, backEndPID: Int32? = nil) {
        self.qemuImg = qemuImg
        self.socketPath = socketPath
        self.workload = workload
        self.label = label
        self.backEndPID = backEndPID
    }

    /// The request count: the workload's, or for a duration one that takes about that long at
    /// 100k IOPS (qemu-img bench stops only after a count).
    public var requestCount: Int {
        switch workload.limit {
        case .requests(let count): count
        // Workload.validate bounds a duration to (0, 86400] s; clamped here too, as the
        // conversion would trap on a value it never checked.
        case .seconds(let seconds): seconds.isFinite ? max(1, Int(min(max(seconds, 0), 86_400) * 100_000)) : 1
        }
    }

    public var arguments: [String] {
        var arguments = ["bench", "--image-opts", "driver=virtio-blk-vhost-user,path=\(socketPath),cache.direct=on",
                         "-c", "\(requestCount)", "-d", "\(workload.queueDepth)", "-s", "\(workload.blockSize)"]
        if workload.mix.readPercent == 0 { arguments.append("-w") }
        return arguments
    }

    public func run() throws(BenchError) -> BenchReport {
        try workload.validate()
        guard workload.mix.readPercent == 0 || workload.mix.readPercent == 100, workload.queueCount == 1,
              workload.pattern == .sequential else {
            throw .invalidWorkload("qemu-img bench runs one kind of sequential request on one queue")
        }
        let cpuBefore = backEndPID.flatMap(CPUTime.ofProcess)
        let (status, data) = try runCapturingOutput(qemuImg, arguments)
        let output = String(decoding: data, as: UTF8.self)
        let cpuAfter = backEndPID.flatMap(CPUTime.ofProcess)
        guard status == 0, let seconds = Self.completionSeconds(in: output), seconds > 0 else {
            throw .backEndMisbehaved(queue: 0, "qemu-img bench failed (status \(status)): \(output)")
        }
        let count = requestCount
        let reads = workload.mix.readPercent == 100 ? count : 0
        let zero = BenchReport.Latency(p50: 0, p99: 0, p999: 0, max: 0, mean: 0)
        return BenchReport(
            label: label, workload: workload, summary: "qemu-img bench via libblkio, " + workload.summary,
            device: BlockDeviceInfo(capacityBytes: 0, logicalBlockSize: 512, queueCount: 1, readOnly: false),
            elapsedSeconds: seconds, requests: count, reads: reads, writes: count - reads,
            iops: Double(count) / seconds,
            mebibytesPerSecond: Double(count) * Double(workload.blockSize) / 1_048_576 / seconds,
            latency: zero, frontEndCPUSeconds: 0,
            backEndCPUSeconds: cpuBefore.flatMap { before in cpuAfter.map { $0 - before } },
            ioErrors: 0, mismatches: 0, perQueue: [count], iotlbMissesAnswered: 0)
    }

    /// The N of qemu-img bench's "Run completed in N seconds." line.
    static func completionSeconds(in output: String) -> Double? {
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("Run completed in ") }) else { return nil }
        return Double(line.dropFirst("Run completed in ".count).prefix { $0.isNumber || $0 == "." })
    }
}
