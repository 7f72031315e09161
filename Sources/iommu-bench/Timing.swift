import IOMMUModel

/// The timed loops. Each is `@inline(never)`, specialized for its structure, and folds every
/// result into a checksum (printed), so the work cannot be optimized away.
enum Timing {
    /// Translates every IOVA of `iovas` once; returns nanoseconds per translation. Any result
    /// other than a one-segment translation counts in `failures`.
    @inline(never)
    static func translations<S: MappedStructure>(_ structure: inout S, iovas: [UInt64],
                                                 segments: UnsafeMutableBufferPointer<IOTLBSegment>,
                                                 checksum: inout UInt64, failures: inout Int) -> Double {
        let start = MonotonicClock.now()
        for iova in iovas {
            switch structure.translate(iova: iova, into: segments) {
            case .translated(segmentCount: 1): checksum &+= segments[0].userAddress
            default: failures += 1
            }
        }
        return Double(MonotonicClock.now() - start) / Double(iovas.count)
    }

    /// Invalidates the mappings `indices` of `workload`, then updates them back, `rounds` times;
    /// returns nanoseconds per invalidate and per update.
    @inline(never)
    static func invalidateAndUpdate<S: MappedStructure>(_ structure: inout S, workload: Workload, indices: [Int],
                                                        rounds: Int, failures: inout Int)
        -> (invalidate: Double, update: Double) {
        var invalidating: UInt64 = 0
        var updating: UInt64 = 0
        for _ in 0..<rounds {
            let start = MonotonicClock.now()
            for index in indices where !structure.invalidate(iova: workload.iova(index)) { failures += 1 }
            let middle = MonotonicClock.now()
            for index in indices where !structure.update(iova: workload.iova(index),
                                                         userAddress: workload.userAddresses[index]) {
                failures += 1
            }
            updating += MonotonicClock.now() - middle
            invalidating += middle - start
        }
        let operations = Double(rounds * indices.count)
        return (Double(invalidating) / operations, Double(updating) / operations)
    }

    /// Builds `S` from `workload`; returns milliseconds.
    @inline(never)
    static func build<S: MappedStructure>(_: S.Type, workload: Workload, checksum: inout UInt64,
                                          failures: inout Int) -> Double {
        let start = MonotonicClock.now()
        var structure = S(workload, failures: &failures)
        let elapsed = MonotonicClock.now() - start
        // Keep the structure observable: translate its first buffer.
        var segment = IOTLBSegment(userAddress: 0, length: 0)
        _ = withUnsafeMutablePointer(to: &segment) {
            structure.translate(iova: workload.iova(0), into: UnsafeMutableBufferPointer(start: $0, count: 1))
        }
        checksum &+= segment.userAddress
        return Double(elapsed) / 1e6
    }

    /// Runs `body` `repetitions` times; each run gives one sample.
    static func repeated(_ repetitions: Int, _ body: () -> Double) -> Statistics {
        Statistics((0..<repetitions).map { _ in body() })
    }
}
