#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostTestSupport
import VhostUserBlkBench

/// The daemon serving NBD exports (`--blk-nbd`) from real servers, with the front end's and
/// our defaults: data through several queues lands in the server's file, requests overlap at
/// the server, bad servers fail the start with the reason, and a server lost while serving
/// gives I/O errors after the reconnect timeout, never a hang (SIGTERM included).
@Suite("Daemon on NBD exports", .serialized)
struct NBDDaemonTests {
    typealias H = GuestHarness

    final class Daemon {
        let process: Process
        let socket: String
        let log: String
        init(_ scratch: H.Scratch, _ arguments: [String], name: String = "daemon") throws {
            socket = scratch.path("\(name).sock")
            log = scratch.path("\(name).log")
            process = try H.startDaemon(socket: socket, arguments: arguments, log: log)
        }
        deinit {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
        var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    }

    static func verify(_ socket: String, queues: Int = 2, span: UInt64 = 8 << 20, only: Bool = false) throws -> BenchReport {
        var workload = Workload()
        workload.verify = true
        workload.verifyOnly = only
        workload.queueCount = queues
        workload.queueDepth = 16
        workload.span = span
        workload.seed = 17
        return try BenchRunner(socketPath: socket, workload: workload).run()
    }

    /// Whether one read through the daemon succeeds within about 10 s (tried every half second):
    /// the disk serves again after its server came back.
    static func answersAgain(_ socket: String) throws -> Bool {
        var probe = Workload()
        probe.limit = .requests(1)
        for _ in 0..<20 {
            usleep(500_000)
            if try BenchRunner(socketPath: socket, workload: probe).run().ioErrors == 0 { return true }
        }
        return false
    }

    /// Seconds the daemon takes to end on SIGTERM while a bench front end has four requests
    /// outstanding at a server that does not answer (reads in the first MiB: written before,
    /// so an RBD image asks its OSD for them).
    /// With `signals: 2`, a second SIGTERM follows the first after a second.
    static func secondsToStopWithRequestsOutstanding(_ daemon: Daemon, signals: Int = 1) throws -> TimeInterval {
        let front = Process()
        front.executableURL = URL(fileURLWithPath: try TestBinary.benchFrontEnd.path)
        front.arguments = ["run", "--socket", daemon.socket, "--iodepth", "4", "--requests", "4", "--size", "1m", "--no-progress"]
        front.standardOutput = FileHandle.nullDevice
        front.standardError = FileHandle.nullDevice
        try front.run()
        defer {
            if front.isRunning { front.terminate() }
            front.waitUntilExit()
        }
        usleep(300_000)
        let signalled = Date()
        daemon.process.terminate()
        if signals > 1 {
            sleep(1)
            #expect(daemon.process.isRunning, "the first SIGTERM did not wait for the requests")
            daemon.process.terminate()
        }
        daemon.process.waitUntilExit()
        return Date().timeIntervalSince(signalled)
    }

    @Test("qemu-nbd with its defaults (one client, no multi-conn): what two queues write is in the file qemu-nbd serves")
    func qemuNBDDataReachesTheFile() throws {
        let scratch = try H.Scratch()
        let file = scratch.path("disk.img")
        try H.makeImage(at: file, size: 16 << 20)
        let server = try NBDServer.qemuNBD(socketPath: scratch.path("nbd.sock"), file: file)
        do {
            let daemon = try Daemon(scratch, ["--blk-nbd=\(server.uri())", "--num-queues=2"])
            let written = try Self.verify(daemon.socket)
            #expect(written.clean && written.writes == 2048 && written.reads == 2048, "\(written)")
            #expect(written.perQueue.allSatisfy { $0 > 0 })
            #expect(daemon.output.contains("multi-conn false"), "\(daemon.output)")
        }
        server.kill()
        // The file itself, served by another daemon straight from disk, holds the pattern.
        let direct = try Daemon(scratch, ["--blk-file=\(file)"])
        let checked = try Self.verify(direct.socket, only: true)
        #expect(checked.clean && checked.reads == 2048, "\(checked)")
    }

    @Test("nbdkit's memory plugin behind the delay filter: 64 reads of 300 ms each at QD32 overlap (about 0.6 s, not 19 s)")
    func requestsOverlapThroughTheDaemon() throws {
        let scratch = try H.Scratch()
        let server = try NBDServer.nbdkit(socketPath: scratch.path("nbd.sock"), filters: ["delay"], plugin: "memory",
                                          ["size=16M", "delay-read=300ms"])
        let daemon = try Daemon(scratch, ["--blk-nbd=\(server.uri())"])
        var workload = Workload()
        workload.queueDepth = 32
        workload.limit = .requests(64)
        let report = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        #expect(report.clean && report.reads == 64, "\(report)")
        #expect(report.elapsedSeconds < 6, "64 reads took \(report.elapsedSeconds) s")
    }

    @Test("a URI libnbd refuses, a server that is down, an export that does not exist: the start fails with the reason")
    func badServersFailTheStart() throws {
        let scratch = try H.Scratch()
        let server = try NBDServer.qemuNBD(socketPath: scratch.path("nbd.sock"), file: "/dev/null", options: ["--export-name=disk"])
        let cases: [(String, String)] = [
            ("ftp://example.invalid/disk", "not an NBD URI"),
            ("nbd+unix:///?socket=\(scratch.path("nobody.sock"))", "cannot connect to the NBD server"),
            (server.uri(export: "other"), "cannot connect to the NBD server"),
        ]
        for (uri, reason) in cases {
            let finished = try runProgram(try H.daemon, ["--socket-path=\(scratch.path("v.sock"))", "--blk-nbd=\(uri)"])
            #expect(finished.status == 1, "\(uri): \(finished.output)")
            #expect(finished.output.contains(reason), "\(uri): \(finished.output)")
        }
    }

    /// Also sandboxed: multi-conn's extra connections (opened when a queue starts) and the
    /// reconnection are made under the seccomp filter, which kills the daemon on a call it lacks.
    @Test("a server lost while serving: I/O errors after the reconnect timeout, the daemon stays up, SIGTERM is not held up, and it serves again once the server is back",
          arguments: [false, true])
    func serverLostWhileServing(sandboxed: Bool) throws {
        let scratch = try H.Scratch()
        let file = scratch.path("disk.img")
        try H.makeImage(at: file, size: 8 << 20)
        let server = try NBDServer.nbdkit(socketPath: scratch.path("nbd.sock"), plugin: "file", ["file=\(file)"])
        let daemon = try Daemon(scratch, ["--blk-nbd=\(server.uri())", "--nbd-reconnect-timeout=1"] + (sandboxed ? ["--sandbox"] : []))
        #expect(try Self.verify(daemon.socket, queues: 1, span: 1 << 20).clean)
        // (A sanitizer build says it installed no filter.)
        #expect(daemon.output.contains("sandboxed") == sandboxed, "\(daemon.output)")

        server.kill()
        var workload = Workload()
        workload.queueDepth = 4
        workload.limit = .requests(8)
        let failed = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        #expect(failed.ioErrors == 8, "\(failed)")
        #expect(daemon.process.isRunning)

        // Back: what was written before is still right, and new writes land.
        try server.start()
        usleep(1_100_000)
        #expect(try Self.verify(daemon.socket, queues: 1, span: 1 << 20, only: true).clean)
        #expect(try Self.verify(daemon.socket, queues: 1, span: 2 << 20).clean)

        // Lost again, requests waiting for it when SIGTERM comes: the daemon ends within the timeout.
        server.kill()
        let stopping = try Self.secondsToStopWithRequestsOutstanding(daemon)
        #expect(stopping < 5, "SIGTERM took \(stopping) s")
        #expect(daemon.process.terminationStatus == 0, "\(daemon.output)")
    }

    @Test("a server that hangs with the connection open (SIGSTOP): I/O errors after the request and reconnect timeouts, the daemon stays up and serves again once it answers; SIGTERM while requests hang there ends the daemon")
    func hungServerWhileServing() throws {
        let scratch = try H.Scratch()
        let file = scratch.path("disk.img")
        try H.makeImage(at: file, size: 8 << 20)
        // qemu-nbd: nbdkit 1.32 can abort when a client shuts down a connection it answers on.
        let server = try NBDServer.qemuNBD(socketPath: scratch.path("nbd.sock"), file: file, shared: 4)
        let daemon = try Daemon(scratch, ["--blk-nbd=\(server.uri())", "--nbd-request-timeout=1", "--nbd-reconnect-timeout=1"])
        #expect(try Self.verify(daemon.socket, queues: 1, span: 1 << 20).clean)
        // Another, with the defaults, for the end (it cannot connect once the server hangs).
        let patient = try Daemon(scratch, ["--blk-nbd=\(server.uri())"], name: "patient")

        #expect(server.pause())
        var workload = Workload()
        workload.queueDepth = 4
        workload.limit = .requests(8)
        let started = Date()
        let failed = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        let waited = Date().timeIntervalSince(started)
        #expect(failed.ioErrors == 8, "\(failed)")
        #expect(waited < 10, "the errors came after \(waited) s")
        #expect(daemon.process.isRunning)
        #expect(daemon.output.contains("unanswered past the request timeout"), "\(daemon.output)")

        // Once nbdkit runs again, a reconnection (tried at most once a second, each bounded)
        // succeeds within a few seconds however loaded the machine; then the data is all there.
        server.resume()
        #expect(try NBDDaemonTests.answersAgain(daemon.socket), "\(daemon.output)")
        let served = try Self.verify(daemon.socket, queues: 1, span: 1 << 20, only: true)
        #expect(served.clean, "\(served)\n\(daemon.output)")

        // Hung again with requests at it when SIGTERM comes: they end with the timeouts, and so
        // does the daemon.
        #expect(server.pause())
        defer { server.resume() }
        let stopping = try Self.secondsToStopWithRequestsOutstanding(daemon)
        #expect(stopping < 8, "SIGTERM took \(stopping) s")
        #expect(daemon.process.terminationStatus == 0, "\(daemon.output)")

        // With the default timeouts SIGTERM would wait up to 40 s for them; a second signal
        // ends the daemon at once, and its socket file goes with it.
        let second = try Self.secondsToStopWithRequestsOutstanding(patient, signals: 2)
        #expect(second < 5, "two SIGTERMs took \(second) s")
        #expect(patient.process.terminationStatus == 1, "\(patient.output)")
        #expect(patient.output.contains("signal received again: ending now"), "\(patient.output)")
        #expect(!FileManager.default.fileExists(atPath: patient.socket))
    }
}
