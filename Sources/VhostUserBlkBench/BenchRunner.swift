import Foundation
import Histogram
import VhostSystem

/// Runs one workload against the vhost-user-blk back end listening at a socket.
public struct BenchRunner: Sendable {
    public var socketPath: String
    public var workload: Workload
    /// Names the back end in the report.
    public var label: String
    /// The back end's process id, to report its CPU time too.
    public var backEndPID: Int32?
    public var connectTimeoutMilliseconds = 5_000
    /// How long a queue with requests in flight may see no completion before the run fails
    /// with `.stalled`.
    public var stallTimeoutMilliseconds = 10_000

    public init(socketPath: String, workload: Workload, label: String = "back end", backEndPID: Int32? = nil) {
        self.socketPath = socketPath
        self.workload = workload
        self.label = label
        self.backEndPID = backEndPID
    }

    /// Connects, runs, stops the rings, disconnects. `progress` is called about once a second
    /// on the calling thread with the seconds elapsed and the requests completed so far.
    public func run(progress: ((Double, Int) -> Void)? = nil) throws(BenchError) -> BenchReport {
        try workload.validate()
        let connection = try BenchConnection(socketPath: socketPath, workload: workload,
                                             connectTimeoutMilliseconds: connectTimeoutMilliseconds)
        let span = workload.span ?? connection.device.capacityBytes
        let runners = connection.queues.map { QueueRunner(queue: $0, workload: workload, spanBytes: span, stallMilliseconds: stallTimeoutMilliseconds) }

        let cpuBefore = CPUTime.ofThisProcess()
        let backEndBefore = backEndPID.flatMap(CPUTime.ofProcess)
        connection.missResponder?.start()
        let started = MonotonicDeadline.now()
        let group = DispatchGroup()
        for runner in runners {
            group.enter()
            let thread = Thread {
                runner.run()
                group.leave()
            }
            thread.name = "bench-q\(runner.queue.index)"
            thread.start()
        }
        var lastProgress = started
        var stopRequested = false
        while group.wait(timeout: .now() + .milliseconds(50)) == .timedOut {
            let now = MonotonicDeadline.now()
            let elapsed = Double(now - started) / 1e9
            if !stopRequested, case .seconds(let limit) = workload.limit, !workload.verify, elapsed >= limit {
                runners.forEach { $0.progress.stopRequested.store(true, ordering: .relaxed) }
                stopRequested = true
            }
            if let progress, now - lastProgress >= 1_000_000_000 {
                lastProgress = now
                progress(elapsed, runners.reduce(0) { $0 + $1.progress.completed.load(ordering: .relaxed) })
            }
        }
        let elapsed = Double(MonotonicDeadline.now() - started) / 1e9
        let cpu = CPUTime.ofThisProcess() - cpuBefore
        let backEndCPU = backEndBefore.flatMap { before in backEndPID.flatMap(CPUTime.ofProcess).map { $0 - before } }

        connection.missResponder?.stop()
        // The responder's failure explains a stall better than the stall does.
        if let failure = connection.missResponder?.failure { throw failure }
        if let failure = runners.compactMap({ $0.result.error }).first { throw failure }
        try connection.stop()

        var latency = runners[0].result.latency
        for runner in runners.dropFirst() { latency.add(runner.result.latency) }
        let reads = runners.reduce(0) { $0 + $1.result.reads }
        let writes = runners.reduce(0) { $0 + $1.result.writes }
        let bytes = runners.reduce(UInt64(0)) { $0 + $1.result.bytes }
        let requests = reads + writes
        func micro(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1000 }
        return BenchReport(
            label: label, workload: workload, summary: workload.summary, device: connection.device,
            elapsedSeconds: elapsed, requests: requests, reads: reads, writes: writes,
            iops: Double(requests) / elapsed, mebibytesPerSecond: Double(bytes) / elapsed / 1_048_576,
            latency: BenchReport.Latency(
                p50: micro(latency.valueAtPercentile(50)), p99: micro(latency.valueAtPercentile(99)),
                p999: micro(latency.valueAtPercentile(99.9)), max: micro(latency.max), mean: latency.mean / 1000),
            frontEndCPUSeconds: cpu, backEndCPUSeconds: backEndCPU,
            ioErrors: runners.reduce(0) { $0 + $1.result.ioErrors },
            mismatches: runners.reduce(0) { $0 + $1.result.mismatches },
            perQueue: runners.map { $0.result.reads + $0.result.writes },
            iotlbMissesAnswered: connection.missResponder?.missesAnswered ?? 0)
    }
}
