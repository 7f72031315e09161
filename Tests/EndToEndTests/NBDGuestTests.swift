import Foundation
import Testing
import VhostTestSupport

/// A QEMU guest whose disk is an NBD export the daemon serves (`--blk-nbd`): what the guest
/// writes, zeroes and flushes is in the file the NBD server serves, byte for byte.
@Suite("QEMU guest on an NBD export")
struct NBDGuestTests {
    typealias H = GuestHarness

    /// qemu-nbd as a user starts it (one client, no multi-conn: the daemon's queues share one
    /// connection), the daemon with its defaults, a two-vCPU guest (QEMU's default of a queue
    /// per vCPU: both carry writes) on the newest QEMU of the matrix; and the same behind the
    /// guest's vIOMMU (lazy, its default): every buffer of the network disk an IOVA.
    @Test(arguments: QEMUBuild.matrix.suffix(1), [nil, "lazy"])
    func guestWritesReachTheFileTheServerServes(_ qemu: QEMUBuild, iommu: String?) throws {
        let scratch = try H.Scratch()
        let (check, lines) = try ScatteredWrites.prepare(in: scratch, cpus: 2)
        // After the host's data was read back: its first 64 KiB zeroed, then a flush.
        let zeroed = (offset: ScatteredWrites.hostDataOffset, count: 64 << 10)
        let workload = "set -e\n" + lines + """
            blktool zeroout $GUEST_DISK \(zeroed.offset) \(zeroed.count)
            blktool flush $GUEST_DISK
            echo "GUEST-NOTE: zeroed and flushed"

            """
        try workload.write(toFile: scratch.path("workload.sh"), atomically: true, encoding: .utf8)
        let server = try NBDServer.qemuNBD(socketPath: scratch.path("nbd.sock"), file: check.image)
        let result: H.Result
        let daemonOutput: String
        do {
            // Info: the per-queue statistics at the end (what is served is the defaults').
            let daemon = try NBDDaemonTests.Daemon(scratch, ["--blk-nbd=\(server.uri())", "--log-level=info"])
            result = try H.run(qemu, ["--no-daemon", "--socket", daemon.socket, "--smp", "2",
                                      "--workload", scratch.path("workload.sh"), "--add-file", "\(scratch.url.path):/data"]
                                      + (iommu.map { ["--iommu", $0] } ?? []))
            daemon.process.terminate()
            daemon.process.waitUntilExit()
            daemonOutput = daemon.output
        }
        server.kill()
        try check.verify(result)
        #expect(result.notes.contains("zeroed and flushed"), "\(result.output)")
        #expect(try H.read(check.image, offset: zeroed.offset, count: zeroed.count).allSatisfy { $0 == 0 })
        let rest = ScatteredWrites.hostData.count - zeroed.count
        #expect(try H.read(check.image, offset: zeroed.offset + zeroed.count, count: rest)
                == Array(ScatteredWrites.hostData.suffix(rest)))
        #expect(daemonOutput.contains("multi-conn false"), "\(daemonOutput)")
        // A handler's line per ring start (the firmware's, then Linux's two queues): none failed
        // a request, and both of Linux's queues wrote.
        let statistics = daemonOutput.split(separator: "\n").filter { $0.contains("queue statistics") }
        #expect(statistics.allSatisfy { $0.contains("errors=0") }, "\(statistics)")
        for queue in 0..<2 {
            #expect(statistics.contains { $0.contains("queue=\(queue) ") && !$0.contains("write=0") }, "\(statistics)")
        }
        if iommu != nil {
            // Every address was an IOVA, translated through the IOTLB QEMU filled.
            let traffic = daemonOutput.split(separator: "\n").last { $0.contains("IOTLB traffic") }
            #expect(traffic.map { !$0.contains(" updates=0") && !$0.contains(" misses=0") } == true, "\(daemonOutput)")
        }
    }
}
