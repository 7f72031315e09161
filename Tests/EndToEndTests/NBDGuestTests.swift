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
    /// per vCPU: both carry writes) on the newest QEMU of the matrix.
    @Test(arguments: QEMUBuild.matrix.suffix(1))
    func guestWritesReachTheFileTheServerServes(_ qemu: QEMUBuild) throws {
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
            let daemon = try NBDDaemonTests.Daemon(scratch, ["--blk-nbd=\(server.uri())"])
            result = try H.run(qemu, ["--no-daemon", "--socket", daemon.socket, "--smp", "2",
                                      "--workload", scratch.path("workload.sh"), "--add-file", "\(scratch.url.path):/data"])
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
    }
}
