#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostTestSupport

/// Live migration on one host: a guest writes and verifies data without pause
/// (vm-images/workloads/migration-writer.sh) while run-guest.sh --migrate moves it, with QMP
/// `migrate`, to a second QEMU started with `-incoming` and the same disk definition, so the
/// destination connects to the same socket while the source still runs. QEMU's defaults and
/// the daemon's; the guest must see no I/O error and every block must be right in the guest
/// and, afterwards, in the image.
@Suite("Live migration of a guest whose disk the daemon serves")
struct MigrationTests {
    typealias H = GuestHarness

    /// A scratch directory with the workload's pattern, and the disk.
    struct Setup {
        let scratch: H.Scratch
        let pattern: [UInt8]

        init(writers: Int = 1) throws {
            scratch = try H.Scratch(under: "/var/tmp")
            pattern = H.pattern(count: 1 << 20, seed: 0x316)
            try FileManager.default.createDirectory(atPath: scratch.path("data"), withIntermediateDirectories: true)
            try H.write(pattern, to: scratch.path("data/pattern"))
            try "\(writers)\n".write(toFile: scratch.path("data/writers"), atomically: true, encoding: .utf8)
        }

        var workload: String {
            GuestHarness.repositoryRoot.appendingPathComponent("vm-images/workloads/migration-writer.sh").path
        }

        /// The launcher's arguments: the workload, `migrations` moves, then the stop mark
        /// written into `markFile` (the image, or the raw base under a qcow2 overlay).
        func arguments(image: String, markFile: String, migrations: Int, daemonLog: String) -> [String] {
            ["--image", image, "--daemon", (try? H.daemon) ?? "", "--memory", "256M",
             "--workload", workload, "--add-file", "\(scratch.path("data")):/data",
             "--migrate", "\(migrations)",
             "--after-migrations", "printf stop | dd of='\(markFile)' bs=512 conv=notrunc status=none",
             "--daemon-arg=--log-level=info", "--daemon-log", daemonLog]
        }
    }

    /// The migrations the launcher reported, in order: (status, total-time ms, downtime ms).
    static func migrations(in output: String) -> [(status: String, total: Int, downtime: Int)] {
        output.split(separator: "\n").compactMap { line in
            guard line.contains("run-guest: migration "), let status = field("status", in: line) else { return nil }
            return (status, Int(field("total-time", in: line)?.dropLast(2) ?? "") ?? -1,
                    Int(field("downtime", in: line)?.dropLast(2) ?? "") ?? -1)
        }
    }

    static func field(_ name: String, in line: Substring) -> String? {
        guard let range = line.range(of: "\(name)=") else { return nil }
        return String(line[range.upperBound...].prefix { $0 != " " })
    }

    /// The guest's own verdict and, in `contents` (raw bytes of the disk), every slot the guest
    /// reported with the sum it wrote last, and the reader's pattern.
    static func verify(_ result: GuestHarness.Result, contents: String, setup: Setup,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(result.exitCode == 0, "\(result.output)", sourceLocation: sourceLocation)
        #expect(result.notes.contains("migration writer verified"), "\(result.notes)", sourceLocation: sourceLocation)
        let slots = result.notes.compactMap { note -> (Int, String)? in
            let words = note.split(separator: " ")
            guard words.count == 3, words[0] == "slot", let offset = Int(words[1]) else { return nil }
            return (offset, String(words[2]))
        }
        // Each writer's slots written so far (a round per slot until all 16 are).
        #expect(slots.count >= 4, "\(result.notes)", sourceLocation: sourceLocation)
        for (offset, sum) in slots {
            #expect(try H.md5(try H.read(contents, offset: offset, count: 65536)) == sum,
                    "slot at \(offset)", sourceLocation: sourceLocation)
        }
        #expect(H.difference(try H.read(contents, offset: 16 << 20, count: 1 << 20), setup.pattern) == nil,
                sourceLocation: sourceLocation)
    }

    /// Two moves of the guest on a raw image with the launcher's `extra` arguments; the guest's
    /// and the image's data verified. - Returns: the launcher's result and the daemon's log.
    static func moveTwiceOnARawDisk(_ qemu: QEMUBuild, _ extra: [String],
                                    sourceLocation: SourceLocation = #_sourceLocation) throws -> (GuestHarness.Result, String) {
        let setup = try Setup()
        let image = setup.scratch.path("disk.img")
        try H.makeImage(at: image, size: 64 << 20)
        let daemonLog = setup.scratch.path("daemon.log")
        let result = try H.run(qemu, setup.arguments(image: image, markFile: image, migrations: 2, daemonLog: daemonLog) + extra)
        try verify(result, contents: image, setup: setup, sourceLocation: sourceLocation)
        return (result, try String(contentsOfFile: daemonLog, encoding: .utf8))
    }

    /// Back and forth three times under load, on a qcow2 overlay over a raw base (both QEMUs'
    /// connections share the daemon's one open image, its metadata caches included), with
    /// QEMU's defaults (one queue per vCPU: two vCPUs, a writer pinned to each) and four queues
    /// offered. QEMU 7.2 gets one vCPU: with two, its TCG corrupts the migrated guest's memory
    /// now and then under load, whatever the daemon does (a kernel stack-protector panic in the
    /// idle task, an RCU stall; 2 of 4 loaded runs; none with one vCPU or on 10.0 and 11.1:
    /// docs/migration.md).
    @Test(arguments: QEMUBuild.matrix)
    func guestOnAQcow2OverlayMovesBackAndForth(_ qemu: QEMUBuild) throws {
        let cpus = qemu.name == "debian12" ? 1 : 2
        let setup = try Setup(writers: 2)
        let base = setup.scratch.path("base.raw")
        let overlay = setup.scratch.path("run.qcow2")
        try H.makeImage(at: base, size: 64 << 20)
        try Qcow2EndToEndTests.qemuImg(nil, ["create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", overlay])
        let daemonLog = setup.scratch.path("daemon.log")
        // The stop mark goes into the base: the guest never writes the overlay's first cluster.
        let result = try H.run(qemu, setup.arguments(image: overlay, markFile: base, migrations: 3, daemonLog: daemonLog)
                               + ["--daemon-arg", "--format=qcow2", "--smp", "\(cpus)", "--num-queues", "4"])
        #expect(Self.migrations(in: result.output).map(\.status) == ["completed", "completed", "completed"], "\(result.output)")
        let contents = setup.scratch.path("contents.raw")
        try Qcow2EndToEndTests.qemuImg(nil, ["convert", "-O", "raw", overlay, contents])
        try Self.verify(result, contents: contents, setup: setup)
        let checked = try runProgram("/usr/bin/qemu-img", ["check", overlay])
        #expect(checked.status == 0 && checked.output.contains("No errors were found"), "\(checked.output)")
        let log = try String(contentsOfFile: daemonLog, encoding: .utf8)
        // Each move: the destination joined while the source ran, and the source logged.
        #expect(log.components(separatedBy: "front end connected while another is served").count - 1 == 3, "\(log)")
        #expect(log.components(separatedBy: "dirty logging starts").count - 1 == 3, "\(log)")
        #expect(!log.contains("not in the dirty log") && !log.contains("closing the connection"), "\(log)")
        for queue in 0..<cpus {
            #expect(log.contains("queue=\(queue) "), "queue \(queue) never served: \(log)")
        }
    }

    /// The guest behind an emulated Intel vIOMMU (every address the device sees is an IOVA,
    /// logged by guest-physical page), on a raw image with O_DIRECT. Not QEMU 7.2: it cannot
    /// migrate this machine at all, whatever the disk (the destination fails to load the
    /// q35's own AHCI controller, "bad FIS receive buffer address": docs/migration.md).
    @Test(arguments: QEMUBuild.matrix.filter { $0.name != "debian12" })
    func guestBehindAVIOMMUMoves(_ qemu: QEMUBuild) throws {
        let (result, log) = try Self.moveTwiceOnARawDisk(qemu, ["--iommu", "strict"] + H.cacheArguments("none"))
        #expect(Self.migrations(in: result.output).map(\.status) == ["completed", "completed"], "\(result.output)")
        #expect(log.contains("IOTLB traffic") && log.contains("cache=none"), "\(log)")
        #expect(!log.contains("not in the dirty log"), "\(log)")
    }

    /// The daemon is killed (kill -9) during the first migration and started again on the
    /// same socket; QEMU reconnects (`reconnect-ms`, as for any back-end restart). That
    /// migration completes or fails; either way the guest keeps its disk and its data, and the
    /// next migration completes.
    @Test(arguments: QEMUBuild.matrix)
    func daemonKilledDuringAMigration(_ qemu: QEMUBuild) throws {
        let (result, log) = try Self.moveTwiceOnARawDisk(qemu, ["--reconnect", "1", "--kill-daemon-during-migration", "1"])
        let moves = Self.migrations(in: result.output)
        #expect(moves.count == 2 && ["completed", "failed"].contains(moves.first?.status ?? ""), "\(result.output)")
        #expect(moves.last?.status == "completed", "\(result.output)")
        #expect(log.contains("restarted after kill -9"), "\(log)")
    }
}
