import Foundation

/// What a run measured, for people (`description`) and programs (`json()`).
public struct BenchReport: Sendable, Codable, Equatable {
    /// Latency percentiles from submit to completion, in microseconds.
    public struct Latency: Sendable, Codable, Equatable {
        public var p50: Double
        public var p99: Double
        public var p999: Double
        public var max: Double
        public var mean: Double
    }

    public var label: String
    public var workload: Workload
    public var summary: String
    public var device: BlockDeviceInfo
    public var elapsedSeconds: Double
    public var requests: Int
    public var reads: Int
    public var writes: Int
    public var iops: Double
    public var mebibytesPerSecond: Double
    public var latency: Latency
    /// CPU time of this front end (all its threads) during the run.
    public var frontEndCPUSeconds: Double
    /// CPU time of the back end during the run, when its process id was given.
    public var backEndCPUSeconds: Double?
    public var ioErrors: Int
    /// Verify mode: blocks read back that did not hold their pattern.
    public var mismatches: Int
    /// Completed requests per queue.
    public var perQueue: [Int]
    /// IOTLB MISSes the front end answered (`IOMMUMode.onDemand`).
    public var iotlbMissesAnswered: Int

    /// Whether the run saw no I/O error and no mismatch.
    public var clean: Bool { ioErrors == 0 && mismatches == 0 }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(self), let text = String(data: data, encoding: .utf8) else { return "{}" }
        return text
    }
}

extension BenchReport: CustomStringConvertible {
    public var description: String {
        func fixed(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }
        var lines = [
            "\(label): \(summary)",
            "  \(fixed(iops / 1000))k IOPS, \(fixed(mebibytesPerSecond)) MiB/s, \(requests) requests in \(fixed(elapsedSeconds, 2)) s"
                + " (\(reads) reads, \(writes) writes)",
            "  latency us: p50 \(fixed(latency.p50)), p99 \(fixed(latency.p99)), p99.9 \(fixed(latency.p999)),"
                + " max \(fixed(latency.max)), mean \(fixed(latency.mean))",
            "  cpu s: front end \(fixed(frontEndCPUSeconds, 2))"
                + (backEndCPUSeconds.map { ", back end \(fixed($0, 2))" } ?? ""),
        ]
        if workload.iommu != .off { lines.append("  IOTLB misses answered: \(iotlbMissesAnswered)") }
        if perQueue.count > 1 { lines.append("  per queue: \(perQueue.map(String.init).joined(separator: ", "))") }
        if workload.verify || !clean { lines.append("  I/O errors \(ioErrors), verify mismatches \(mismatches)") }
        return lines.joined(separator: "\n")
    }
}
