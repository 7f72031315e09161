#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostTestSupport
import VhostUserBlkBench

/// The daemon serving Ceph RBD images (`--blk-rbd`) from a real single-node cluster that each
/// test starts and stops: a QEMU guest's writes and the bench front end's are in the image as
/// `rbd export` gives it, and what cannot be served fails the start with the reason.
@Suite("Daemon on Ceph RBD images", .serialized)
struct RBDDaemonTests {
    typealias H = GuestHarness
    typealias Daemon = NBDDaemonTests.Daemon

    @Test("a QEMU guest (the first QEMU of the matrix, defaults) writes through the daemon; rbd export holds its bytes, and the guest reads them back")
    func guestWritesReachTheImage() throws {
        let cluster = try CephCluster()
        try cluster.rbd(["create", "--size", "64M", "rbd/guest"])
        let scratch = try H.Scratch()
        let data = (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: ($0 &* 7919) >> 3) }
        try Data(data).write(to: URL(fileURLWithPath: scratch.path("data")))
        let daemon = try Daemon(scratch, ["--blk-rbd=rbd/guest", "--ceph-conf=\(cluster.configuration)"])
        let workload = """
            set -e
            blktool pwrite $GUEST_DISK 1048576 /data/data
            blktool flush $GUEST_DISK
            blktool pread $GUEST_DISK 1048576 262144 /tmp/back
            cmp /data/data /tmp/back
            echo "GUEST-NOTE: written and read back"
            """
        try workload.write(toFile: scratch.path("workload.sh"), atomically: true, encoding: .utf8)
        let result = try H.run(QEMUBuild.matrix[0], ["--no-daemon", "--socket", daemon.socket, "--workload", scratch.path("workload.sh"),
                                                     "--add-file", "\(scratch.path("data")):/data/data"])
        #expect(result.exitCode == 0, "\(result.output)")
        #expect(result.notes.contains("written and read back"), "\(result.output)")
        let exported = scratch.path("export.img")
        try cluster.rbd(["export", "rbd/guest", exported])
        let image = try Data(contentsOf: URL(fileURLWithPath: exported))
        let matches = image.count == 64 << 20 && Array(image[(1 << 20)..<((1 << 20) + (256 << 10))]) == data
        #expect(matches)
    }

    @Test("two queues' verified writes through the daemon are in the image: rbd export, served from a file, checks clean")
    func benchWritesReachTheImage() throws {
        let cluster = try CephCluster()
        try cluster.rbd(["create", "--size", "16M", "rbd/bench"])
        let scratch = try H.Scratch()
        do {
            let daemon = try Daemon(scratch, ["--blk-rbd=rbd/bench", "--ceph-conf=\(cluster.configuration)", "--num-queues=2"])
            let written = try NBDDaemonTests.verify(daemon.socket)
            #expect(written.clean && written.writes == 2048 && written.perQueue.allSatisfy { $0 > 0 }, "\(written)")
            #expect(daemon.output.contains("rbd=rbd/bench"), "\(daemon.output)")
        }
        let exported = scratch.path("export.img")
        try cluster.rbd(["export", "rbd/bench", exported])
        let direct = try Daemon(scratch, ["--blk-file=\(exported)"])
        let checked = try NBDDaemonTests.verify(direct.socket, only: true)
        #expect(checked.clean && checked.reads == 2048, "\(checked)")
    }

    @Test("a missing pool or image, a client the cluster does not know, an unreadable ceph.conf: the start fails with the reason")
    func badImagesFailTheStart() throws {
        let cluster = try CephCluster()
        try cluster.rbd(["create", "--size", "4M", "rbd/disk"])
        let socket = "\(cluster.directory).vhost.sock"
        let cases: [([String], String)] = [
            (["--blk-rbd=nopool/disk"], "cannot use the Ceph pool 'nopool'"),
            (["--blk-rbd=rbd/nodisk"], "cannot open the RBD image 'rbd/nodisk'"),
            (["--blk-rbd=rbd/disk", "--ceph-id=nobody"], "cannot connect to the Ceph cluster"),
        ]
        for (arguments, reason) in cases {
            let finished = try runProgram(try H.daemon, ["--socket-path=\(socket)", "--ceph-conf=\(cluster.configuration)"] + arguments)
            #expect(finished.status == 1, "\(arguments): \(finished.output)")
            #expect(finished.output.contains(reason), "\(arguments): \(finished.output)")
        }
        let unreadable = try runProgram(try H.daemon, ["--socket-path=\(socket)", "--blk-rbd=rbd/disk",
                                                       "--ceph-conf=\(cluster.directory)/missing.conf"])
        #expect(unreadable.status == 1 && unreadable.output.contains("cannot read"), "\(unreadable.output)")
    }

    @Test("an OSD that stops answering (SIGSTOP): I/O errors after the request timeout, the daemon stays up and serves again once it answers; SIGTERM while requests wait there ends the daemon within the timeout, and so does closing the image")
    func stoppedOSDWhileServing() throws {
        let cluster = try CephCluster()
        try cluster.rbd(["create", "--size", "16M", "rbd/disk"])
        let scratch = try H.Scratch()
        let daemon = try Daemon(scratch, ["--blk-rbd=rbd/disk", "--ceph-conf=\(cluster.configuration)", "--rbd-request-timeout=2"])
        #expect(try NBDDaemonTests.verify(daemon.socket, queues: 1, span: 1 << 20).clean)

        try cluster.pauseOSD()
        var paused = true
        defer { if paused { try? cluster.resumeOSD() } }
        var workload = Workload()
        workload.queueDepth = 4
        workload.limit = .requests(8)
        // Reads of what was written: the rest of the image has no objects yet, and librbd
        // answers reads there from its object map without asking an OSD.
        workload.span = 1 << 20
        let started = Date()
        let failed = try BenchRunner(socketPath: daemon.socket, workload: workload).run()
        let waited = Date().timeIntervalSince(started)
        #expect(failed.ioErrors == 8, "\(failed)")
        #expect(waited < 15, "the errors came after \(waited) s")
        #expect(daemon.process.isRunning)

        try cluster.resumeOSD()
        paused = false
        #expect(try NBDDaemonTests.answersAgain(daemon.socket), "\(daemon.output)")
        let served = try NBDDaemonTests.verify(daemon.socket, queues: 1, span: 1 << 20, only: true)
        #expect(served.clean, "\(served)\n\(daemon.output)")

        try cluster.pauseOSD()
        paused = true
        // The requests end with the timeout, and closing the image (more requests to the OSD)
        // is given that long too.
        let stopping = try NBDDaemonTests.secondsToStopWithRequestsOutstanding(daemon)
        #expect(stopping < 8, "SIGTERM took \(stopping) s")
        #expect(daemon.process.terminationStatus == 0, "\(daemon.output)")
        #expect(daemon.output.contains("the RBD image did not close in time"), "\(daemon.output)")
    }
}
