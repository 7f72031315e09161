#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// fio on the image itself (io_uring, O_DIRECT, the workload's block size, depth and queues as
/// jobs): the storage's own figure, the physical reference for the disk cases.
public struct FioReference: Sendable {
    /// Its samples' key in a comparison row.
    public static let key = "fio"

    public var fio: String
    public var image: String
    public var workload: Workload

    public init(fio: String, image: String, workload: Workload) {
        self.fio = fio
        self.image = image
        self.workload = workload
    }

    /// fio's arguments for the workload.
    public var arguments: [String] {
        let rw: String
        switch (workload.pattern, workload.mix.readPercent) {
        case (.random, 100): rw = "randread"
        case (.random, 0): rw = "randwrite"
        case (.random, _): rw = "randrw"
        case (.sequential, 100): rw = "read"
        case (.sequential, 0): rw = "write"
        case (.sequential, _): rw = "rw"
        }
        var arguments = ["--name=reference", "--filename=\(image)", "--ioengine=io_uring", "--direct=1",
                         "--rw=\(rw)", "--bs=\(workload.blockSize)", "--iodepth=\(workload.queueDepth)",
                         "--numjobs=\(workload.queueCount)", "--group_reporting", "--norandommap", "--randrepeat=0",
                         "--output-format=json"]
        if workload.mix.readPercent != 100 && workload.mix.readPercent != 0 {
            arguments.append("--rwmixread=\(workload.mix.readPercent)")
        }
        if workload.pattern == .sequential, workload.queueCount > 1 {
            // Each job its own stripe, as the bench's queues have.
            arguments.append("--offset_increment=\(100 / workload.queueCount)%")
        }
        if case .seconds(let seconds) = workload.limit {
            arguments += ["--time_based", "--runtime=\(String(format: "%g", seconds))"]
        }
        return arguments
    }

    /// Runs fio and reads its JSON: IOPS and completion-latency percentiles.
    public func run(label: String = "fio") throws(BenchError) -> BenchReport {
        let (status, output) = try runCapturingOutput(fio, arguments)
        guard status == 0, let report = Self.report(fromJSON: output, workload: workload, label: label) else {
            throw .backEndMisbehaved(queue: 0, "fio failed (status \(status)): "
                                     + String(decoding: output.prefix(2000), as: UTF8.self))
        }
        return report
    }

    /// The report in fio's `--output-format=json` (one group), nil when it is not that.
    static func report(fromJSON data: Data, workload: Workload, label: String) -> BenchReport? {
        // fio may print notices before the JSON object.
        guard let start = data.firstIndex(of: UInt8(ascii: "{")),
              let root = try? JSONSerialization.jsonObject(with: data[start...]) as? [String: Any],
              let job = (root["jobs"] as? [[String: Any]])?.first else { return nil }
        var iops = 0.0
        var requests = 0
        var reads = 0
        var errors = 0
        var p50 = 0.0, p99 = 0.0, p999 = 0.0, maximum = 0.0, mean = 0.0
        for direction in ["read", "write"] {
            guard let side = job[direction] as? [String: Any], let count = side["total_ios"] as? Int, count > 0 else { continue }
            iops += side["iops"] as? Double ?? 0
            requests += count
            if direction == "read" { reads = count }
            errors += (job["error"] as? Int) ?? 0
            if let latency = side["clat_ns"] as? [String: Any] {
                let percentiles = latency["percentile"] as? [String: Double] ?? [:]
                p50 = max(p50, (percentiles["50.000000"] ?? 0) / 1000)
                p99 = max(p99, (percentiles["99.000000"] ?? 0) / 1000)
                p999 = max(p999, (percentiles["99.900000"] ?? 0) / 1000)
                maximum = max(maximum, (latency["max"] as? Double ?? 0) / 1000)
                mean = max(mean, (latency["mean"] as? Double ?? 0) / 1000)
            }
        }
        guard requests > 0 else { return nil }
        let seconds = Double(job["elapsed"] as? Int ?? 0)
        return BenchReport(
            label: label, workload: workload, summary: "fio io_uring O_DIRECT, " + workload.summary,
            device: BlockDeviceInfo(capacityBytes: 0, logicalBlockSize: 512, queueCount: workload.queueCount, readOnly: false),
            elapsedSeconds: seconds, requests: requests, reads: reads, writes: requests - reads, iops: iops,
            mebibytesPerSecond: iops * Double(workload.blockSize) / 1_048_576,
            latency: BenchReport.Latency(p50: p50, p99: p99, p999: p999, max: maximum, mean: mean),
            frontEndCPUSeconds: 0, backEndCPUSeconds: nil, ioErrors: errors, mismatches: 0,
            perQueue: [requests], iotlbMissesAnswered: 0)
    }
}
