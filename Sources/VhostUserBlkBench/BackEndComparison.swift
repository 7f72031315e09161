/// Every sample of a comparison, and the medians and ratios drawn from them.
public struct BackEndComparison: Sendable, Codable {
    public struct Row: Sendable, Codable {
        public var comparisonCase: ComparisonCase
        /// Reports per back end (`ComparedBackEnd.rawValue`), in run order.
        public var samples: [String: [BenchReport]]

        public func reports(_ backEnd: ComparedBackEnd) -> [BenchReport] { samples[backEnd.rawValue] ?? [] }

        /// fio's runs on the same file (disk cases only).
        public var referenceReports: [BenchReport] { samples[FioReference.key] ?? [] }
        public var medianReferenceIOPS: Double { median(referenceReports.map(\.iops)) }
        public var medianReferenceP99: Double { median(referenceReports.map(\.latency.p99)) }
        public var medianReferenceP50: Double { median(referenceReports.map(\.latency.p50)) }
        public func medianP50(_ backEnd: ComparedBackEnd) -> Double { median(reports(backEnd).map(\.latency.p50)) }

        /// Our median IOPS over fio's, 0 without fio runs.
        public var referenceRatio: Double {
            let reference = medianReferenceIOPS
            return reference > 0 ? medianIOPS(.ours) / reference : 0
        }

        public func medianIOPS(_ backEnd: ComparedBackEnd) -> Double { median(reports(backEnd).map(\.iops)) }
        public func medianP99(_ backEnd: ComparedBackEnd) -> Double { median(reports(backEnd).map(\.latency.p99)) }
        public func medianCPUPerRequest(_ backEnd: ComparedBackEnd) -> Double {
            median(reports(backEnd).compactMap { report in report.backEndCPUSeconds.map { $0 / Double(max(report.requests, 1)) } })
        }

        /// Our median IOPS over qemu-storage-daemon's.
        public var ratio: Double {
            let theirs = medianIOPS(.qemuStorageDaemon)
            return theirs > 0 ? medianIOPS(.ours) / theirs : 0
        }
    }

    public var rows: [Row]
    /// VmRSS of each back end shortly after it started listening, one per start.
    public var idleResidentBytes: [String: [UInt64]]
    public var machine: String
    public var command: String
    public var repetitions: Int
    public var seconds: Double
    public var imageBytes: UInt64
    /// The disk cases' image (0 without them).
    public var diskImageBytes: UInt64 = 0

    public func medianIdleResidentBytes(_ backEnd: ComparedBackEnd) -> Double {
        median((idleResidentBytes[backEnd.rawValue] ?? []).map { Double($0) })
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
public func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
