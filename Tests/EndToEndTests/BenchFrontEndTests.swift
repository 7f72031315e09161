#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostTestSupport
import VhostUserBlkBench

/// The benchmark front end (`VhostUserBlkBench`, `vhost-user-blk-bench`) against the daemon
/// binary: data integrity through verify mode, request accounting, and clear failures when
/// the back end dies or cannot serve the workload.
@Suite("Benchmark front end against the daemon")
struct BenchFrontEndTests {
    typealias H = GuestHarness

    /// $VHOST_USER_BLK_BENCH_BIN, which `make test` sets for each build.
    static var benchBinary: String {
        get throws { try TestBinary.benchFrontEnd.path }
    }

    /// A daemon on a fresh image, stopped when the value goes away.
    final class Daemon {
        let scratch: H.Scratch
        let socket: String
        let image: String
        let process: Process

        /// With `nullSize`, a null disk (`--null-size`) instead of an image file.
        init(megabytes: Int = 16, extra: [String] = [], nullSize: String? = nil) throws {
            scratch = try H.Scratch()
            socket = scratch.path("vhost.sock")
            image = scratch.path("disk.img")
            let disk: [String]
            if let nullSize {
                disk = ["--null-size=\(nullSize)"]
            } else {
                try H.makeImage(at: image, size: megabytes << 20)
                disk = ["--blk-file=\(image)"]
            }
            process = try H.startDaemon(socket: socket, arguments: disk + extra, log: scratch.path("daemon.log"))
        }

        deinit {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
    }

    @Test("verify writes every block and reads it back; a block corrupted on the host is one mismatch")
    func verifyFindsACorruptedBlock() throws {
        let daemon = try Daemon(extra: ["--num-queues=2"])
        var workload = Workload()
        workload.verify = true
        workload.queueCount = 2
        workload.queueDepth = 8
        workload.span = 16 << 20
        workload.seed = 7
        let written = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        #expect(written.clean, "\(written)")
        #expect(written.writes == 4096 && written.reads == 4096)
        #expect(written.perQueue == [4096, 4096])

        // Block 100 on the host no longer holds the pattern.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: daemon.image))
        try handle.seek(toOffset: 100 * 4096 + 512)
        handle.write(Data(repeating: 0xAA, count: 8))
        try handle.close()

        workload.verifyOnly = true
        let checked = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        #expect(checked.writes == 0 && checked.reads == 4096)
        #expect(checked.mismatches == 1)
        #expect(!checked.clean)

        // Another seed's pattern is not this one's: every block mismatches.
        workload.seed = 8
        let otherSeed = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        #expect(otherSeed.mismatches == 4096)
    }

    @Test("a request count is split evenly over the queues and counted exactly", arguments: [CompletionMode.eventfd, .polling])
    func requestCountIsExact(_ completion: CompletionMode) throws {
        let daemon = try Daemon(extra: ["--num-queues=2"])
        var workload = Workload()
        workload.mix = .mixed(readPercent: 50)
        workload.queueCount = 2
        workload.limit = .requests(1001)
        workload.completion = completion
        let report = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        #expect(report.requests == 1001)
        #expect(report.perQueue == [501, 500])
        #expect(report.reads > 0 && report.writes > 0 && report.reads + report.writes == 1001)
        #expect(report.ioErrors == 0)
        #expect(report.latency.p50 > 0 && report.latency.p50 <= report.latency.p99 && report.latency.p99 <= report.latency.max)
    }

    @Test("a back end killed mid-run is reported as a stall, not waited on forever")
    func killedBackEndIsAStall() throws {
        let daemon = try Daemon()
        var workload = Workload()
        workload.limit = .seconds(60)
        var runner = BenchRunner(socketPath: daemon.socket, workload: workload)
        runner.stallTimeoutMilliseconds = 1_000
        // Killed once the run is under way, whatever the machine's speed: the daemon logged the
        // connection and has spent CPU time on requests since.
        let pid = daemon.process.processIdentifier
        let log = daemon.scratch.path("daemon.log")
        let killer = try TestThread {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline,
                  !((try? String(contentsOfFile: log, encoding: .utf8))?.contains("front end connected") ?? false) {
                usleep(1_000)
            }
            let connected = Self.cpuTicks(pid)
            while Date() < deadline, Self.cpuTicks(pid) < connected + 5 { usleep(1_000) }
            kill(pid, SIGKILL)
        }
        defer { killer.join() }
        #expect(throws: BenchError.stalled(queue: 0, milliseconds: 1_000)) { try runner.run() }
    }

    /// utime + stime of a process in clock ticks (0 once it is gone).
    static func cpuTicks(_ pid: Int32) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12 else { return 0 }
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }

    @Test("writes to a read-only device are refused before any request, with the reason")
    func readOnlyDeviceRefusesWrites() throws {
        let daemon = try Daemon(extra: ["--read-only"])
        var workload = Workload()
        workload.mix = .write
        #expect(throws: BenchError.deviceUnsuitable("the device is read-only and the workload writes")) {
            try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        }
        workload.mix = .read
        workload.limit = .requests(100)
        #expect(try BenchRunner(socketPath: daemon.socket, workload: workload).run().reads == 100)
    }

    @Test("the daemon's null disk has the size asked, serves every request, and stores nothing")
    func nullDisk() throws {
        let daemon = try Daemon(nullSize: "3g")
        var workload = Workload()
        workload.mix = .mixed(readPercent: 50)
        workload.limit = .requests(2_000)
        let report = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        #expect(report.device.capacityBytes == 3 << 30)
        #expect(report.requests == 2_000 && report.ioErrors == 0)
        // Nothing written is kept: every block verify reads back mismatches.
        workload.verify = true
        workload.span = 1 << 20
        let verify = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        #expect(verify.ioErrors == 0 && verify.mismatches == 256)
    }

    @Test("behind a vIOMMU: buffers on demand through MISS, or premapped; the data is exact either way",
          arguments: [IOMMUMode.onDemand, .premapped])
    func throughTheVIOMMU(_ mode: IOMMUMode) throws {
        let daemon = try Daemon(extra: ["--num-queues=2"])
        var workload = Workload()
        workload.iommu = mode
        workload.verify = true
        workload.queueCount = 2
        workload.queueDepth = 8
        workload.span = 4 << 20
        let report = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        #expect(report.clean, "\(report)")
        #expect(report.writes == 1024 && report.reads == 1024)
        if mode == .onDemand {
            // Each slot's buffer page missed once (2 queues × 8 slots), no more: pages stay mapped.
            #expect(report.iotlbMissesAnswered == 16)
        } else {
            #expect(report.iotlbMissesAnswered == 0)
        }
    }

    /// The same front end, unchanged, against the reference back end.
    @Test("works unchanged against qemu-storage-daemon; asking it for a vIOMMU is a clear refusal")
    func againstQemuStorageDaemon() throws {
        let scratch = try H.Scratch()
        let image = scratch.path("disk.img")
        try H.makeImage(at: image, size: 16 << 20)
        let socket = scratch.path("qsd.sock")
        let qsd = try BackEndProcess(
            arguments: ComparedBackEnd.qemuStorageDaemon.arguments(
                executable: "/usr/bin/qemu-storage-daemon", socket: socket, disk: .image(path: image), queues: 2),
            socket: socket, logPath: scratch.path("qsd.log"))
        defer { qsd.stop() }
        var workload = Workload()
        workload.verify = true
        workload.queueCount = 2
        let verified = try BenchRunner(socketPath: socket, workload: workload).run()
        #expect(verified.clean && verified.reads == 4096 && verified.writes == 4096, "\(verified)")
        workload.verify = false
        workload.mix = .mixed(readPercent: 70)
        workload.limit = .requests(5_000)
        workload.completion = .polling
        let mixed = try BenchRunner(socketPath: socket, workload: workload, backEndPID: qsd.pid).run()
        #expect(mixed.requests == 5_000 && mixed.ioErrors == 0)
        #expect(mixed.backEndCPUSeconds != nil)
        workload.iommu = .premapped
        #expect(throws: BenchError.protocolFailure(.notOffered(.virtioFeature(.accessPlatform)))) {
            try BenchRunner(socketPath: socket, workload: workload).run()
        }
    }

    @Test("the command prints JSON a program can read, and refuses bad arguments with a reason")
    func commandLine() throws {
        let daemon = try Daemon()
        let good = try run([Self.benchBinary, "--socket", daemon.socket, "--rw", "randwrite", "--requests", "2000",
                            "--iodepth", "16", "--json", "--no-progress"])
        #expect(good.status == 0, "\(good.error)")
        let report = try JSONDecoder().decode(BenchReport.self, from: Data(good.output.utf8))
        #expect(report.writes == 2000 && report.reads == 0)
        #expect(report.workload.queueDepth == 16)

        let bad = try run([Self.benchBinary, "--socket", daemon.socket, "--bs", "1000"])
        #expect(bad.status != 0)
        #expect(bad.error.contains("block size 1000"), "\(bad.error)")

        let absent = try run([Self.benchBinary, "--socket", daemon.scratch.path("nobody.sock"), "--no-progress"])
        #expect(absent.status == 1)
        #expect(absent.error.contains("nobody.sock"), "\(absent.error)")
    }

    private func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), String(decoding: errorData, as: UTF8.self))
    }
}
