import IOMMUModel

/// Runs every figure: translate (per structure, size and pattern), invalidate and update (per
/// structure and size), and building 1M mappings (per structure).
struct Benchmark {
    let options: Options
    var measurements: [Measurement] = []
    /// Folded results of every timed operation, printed so that nothing is optimized away.
    var checksum: UInt64 = 0
    /// Operations that did not give the expected result: must stay zero.
    var failures = 0

    static let fullSizes = [10, 1_000, 100_000, 1_000_000]
    static let buildSize = 1_000_000

    var sizes: [Int] { options.quick ? [10, 1_000] : Self.fullSizes }
    /// Translations per timed run.
    var translations: Int { options.quick ? 1 << 14 : 1 << 20 }
    /// Invalidate + update operations per timed run.
    var mutations: Int { options.quick ? 1 << 12 : 1 << 16 }

    init(options: Options) { self.options = options }

    mutating func run() {
        for count in sizes {
            let workload = Workload(count: count)
            measure(RangeStoreStructure.self, workload)
            measure(CachedRangeStoreStructure.self, workload)
            measure(PageTableStructure.self, workload)
            measure(MirrorStructure.self, workload)
            measure(CachedMirrorStructure.self, workload)
        }
        if !options.quick {
            let workload = Workload(count: Self.buildSize)
            measureBuild(RangeStoreStructure.self, workload)
            measureBuild(PageTableStructure.self, workload)
            measureBuild(MirrorStructure.self, workload)
        }
    }

    mutating func measure<S: MappedStructure>(_: S.Type, _ workload: Workload) {
        var structure = S(workload, failures: &failures)
        let segments = UnsafeMutableBufferPointer<IOTLBSegment>.allocate(capacity: 4)
        segments.initialize(repeating: IOTLBSegment(userAddress: 0, length: 0))
        defer { segments.deallocate() }
        for pattern in Workload.Pattern.allCases {
            let iovas = workload.iovas(pattern, length: translations)
            // One untimed run warms the caches and the branch predictors.
            _ = Timing.translations(&structure, iovas: iovas, segments: segments, checksum: &checksum,
                                    failures: &failures)
            let statistics = Timing.repeated(options.repetitions) {
                Timing.translations(&structure, iovas: iovas, segments: segments, checksum: &checksum,
                                    failures: &failures)
            }
            measurements.append(Measurement(operation: "translate", structure: S.name, mappings: workload.count,
                                            pattern: pattern, statistics: statistics, unit: "ns"))
        }

        var random = SplitMix64(state: 3)
        let batch = min(workload.count, 4096)
        let indices = Array((0..<workload.count).shuffled(using: &random).prefix(batch))
        let rounds = max(1, mutations / batch)
        var invalidations: [Double] = []
        var updates: [Double] = []
        for _ in 0..<options.repetitions {
            let (invalidate, update) = Timing.invalidateAndUpdate(&structure, workload: workload, indices: indices,
                                                                  rounds: rounds, failures: &failures)
            invalidations.append(invalidate)
            updates.append(update)
        }
        measurements.append(Measurement(operation: "invalidate", structure: S.name, mappings: workload.count,
                                        pattern: nil, statistics: Statistics(invalidations), unit: "ns"))
        measurements.append(Measurement(operation: "update", structure: S.name, mappings: workload.count,
                                        pattern: nil, statistics: Statistics(updates), unit: "ns"))
    }

    mutating func measureBuild<S: MappedStructure>(_: S.Type, _ workload: Workload) {
        let statistics = Timing.repeated(min(options.repetitions, 5)) {
            Timing.build(S.self, workload: workload, checksum: &checksum, failures: &failures)
        }
        measurements.append(Measurement(operation: "build", structure: S.name, mappings: workload.count,
                                        pattern: nil, statistics: statistics, unit: "ms"))
    }
}
