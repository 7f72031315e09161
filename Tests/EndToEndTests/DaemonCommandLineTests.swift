#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VhostTestSupport
import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol

/// The daemon's command line, run as a user runs it: the built executable in a child process.
@Suite("vhost-user-blk command line")
struct DaemonCommandLineTests {
    typealias H = GuestHarness

    struct Finished {
        var status: Int32
        var output: String
    }

    static func runDaemon(_ arguments: [String]) throws -> Finished {
        let finished = try runProgram(H.daemon, arguments)
        return Finished(status: finished.status, output: finished.output)
    }

    /// The "back-end program conventions" of QEMU's vhost-user spec: a JSON object of type
    /// "block" with the features "read-only" and "blk-file".
    @Test func helpListsEveryOption() throws {
        let finished = try Self.runDaemon(["--help"])
        #expect(finished.status == 0)
        for option in ["--socket-path", "--fd", "--print-capabilities", "--blk-file", "--null-size", "--read-only",
                       "--num-queues", "--queue-size", "--poll-us", "--io-delay-us", "--serial", "--log-level",
                       "--sandbox", "--max-mem-regions", "--max-iotlb-entries", "--max-guest-memory", "--max-connections", "--cache", "--aio"] {
            #expect(finished.output.contains(option), "\(option)")
        }
    }

    @Test func printCapabilitiesPrintsTheSpecJSON() throws {
        let finished = try Self.runDaemon(["--print-capabilities"])
        #expect(finished.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(finished.output.utf8)) as? [String: Any])
        #expect(json["type"] as? String == "block")
        #expect(Set(json["features"] as? [String] ?? []) == ["read-only", "blk-file"])
    }

    @Test func imageSizeNotAMultipleOf512IsRefusedClearly() throws {
        let scratch = try H.Scratch()
        let image = scratch.path("odd.img")
        try H.write([UInt8](repeating: 1, count: 1000), to: image)
        let finished = try Self.runDaemon(["--socket-path=\(scratch.path("s.sock"))", "--blk-file=\(image)"])
        #expect(finished.status != 0)
        #expect(finished.output.contains("not a multiple of the 512-byte sector"), "\(finished.output)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("s.sock")))
    }

    @Test(arguments: [
        (["--blk-file=/tmp/x.img"], "exactly one of --socket-path and --fd"),
        (["--socket-path=/tmp/a.sock", "--fd=3", "--blk-file=/tmp/x.img"], "exactly one of --socket-path and --fd"),
        (["--socket-path=/tmp/a.sock"], "exactly one of --blk-file, --null-size, --blk-nbd and --blk-rbd"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--null-size=1g"], "exactly one of --blk-file, --null-size, --blk-nbd and --blk-rbd"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--blk-nbd=nbd://h/e"], "exactly one of --blk-file, --null-size, --blk-nbd and --blk-rbd"),
        (["--socket-path=/tmp/a.sock", "--blk-nbd=nbd://h/e", "--cache=none"], "--cache applies to --blk-file and --null-size, not to --blk-nbd"),
        (["--socket-path=/tmp/a.sock", "--blk-nbd=nbd://h/e", "--format=qcow2"], "--format applies to --blk-file and --null-size, not to --blk-nbd"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--nbd-connections=2"], "--nbd-connections applies to --blk-nbd"),
        (["--socket-path=/tmp/a.sock", "--blk-nbd=nbd://h/e", "--nbd-connections=0"], "--nbd-connections must be between 1 and 32"),
        (["--socket-path=/tmp/a.sock", "--blk-nbd=nbds://h/e", "--sandbox"], "--sandbox does not work with TLS (nbds) URIs yet"),
        (["--socket-path=/tmp/a.sock", "--blk-nbd=nbd://localhost:10809/e", "--sandbox"], "needs the server's address, not a name (localhost)"),
        (["--socket-path=/tmp/a.sock", "--blk-rbd=rbd/disk", "--sandbox"], "--sandbox does not work with --blk-rbd yet"),
        (["--socket-path=/tmp/a.sock", "--blk-rbd=rbd"], "--blk-rbd 'rbd' is not POOL/IMAGE or POOL/IMAGE@SNAPSHOT"),
        (["--socket-path=/tmp/a.sock", "--blk-rbd=rbd/disk@"], "--blk-rbd 'rbd/disk@' is not POOL/IMAGE"),
        (["--socket-path=/tmp/a.sock", "--blk-rbd=/disk"], "--blk-rbd '/disk' is not POOL/IMAGE"),
        (["--socket-path=/tmp/a.sock", "--blk-rbd=rbd/disk", "--cache=none"], "--cache applies to --blk-file and --null-size, not to --blk-rbd"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--ceph-id=admin"], "--ceph-id applies to --blk-rbd"),
        (["--socket-path=/tmp/a.sock", "--blk-rbd=rbd/disk", "--blk-nbd=nbd://h/e"], "exactly one of --blk-file, --null-size, --blk-nbd and --blk-rbd"),
        (["--socket-path=/tmp/a.sock", "--blk-nbd=nbd://h/e", "--nbd-reconnect-timeout=3601"], "--nbd-reconnect-timeout must be between 0 and 3600"),
        (["--socket-path=/tmp/a.sock", "--blk-nbd=nbd://h/e", "--nbd-reconnect-timeout=soon"], "--nbd-reconnect-timeout 'soon' is not a number"),
        (["--socket-path=/tmp/a.sock", "--blk-nbd=nbd://h/e", "--nbd-request-timeout=-1"], "--nbd-request-timeout must be between 0 and 3600"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--nbd-request-timeout=5"], "--nbd-request-timeout applies to --blk-nbd"),
        (["--socket-path=/tmp/a.sock", "--blk-rbd=rbd/disk", "--rbd-request-timeout=3601"], "--rbd-request-timeout must be between 0 and 3600"),
        (["--socket-path=/tmp/a.sock", "--blk-nbd=nbd://h/e", "--rbd-request-timeout=5"], "--rbd-request-timeout applies to --blk-rbd"),
        (["--socket-path=/tmp/a.sock", "--null-size=lots"], "--null-size 'lots' is not a size"),
        (["--socket-path=/tmp/a.sock", "--null-size=99999999999t"], "--null-size '99999999999t' is not a size"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--queue-size=100"], "--queue-size must be a power of two"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--queue-size=65536"], "between 2 and 32768"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--num-queues=1025"], "--num-queues must be between 1 and 1024"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--num-queues=0"], "--num-queues must be between"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--log-level=loud"], "--log-level must be one of"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--bogus"], "unknown option '--bogus'"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--cache=directio"], "--cache must be one of: writeback, none, directsync, unsafe"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--aio=native"], "--aio must be io_uring, threads or sync"),
        (["--socket-path"], "--socket-path needs a value"),
        (["--fd=abc", "--blk-file=/tmp/x.img"], "--fd 'abc' is not a number"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--read-only=yes"], "--read-only takes no value"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--poll-us=-1"], "--poll-us must be between 0 and 10000"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--io-delay-us=2000000"], "--io-delay-us must be at most 1000000"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--sandbox=yes"], "--sandbox takes no value"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--max-mem-regions=510"], "--max-mem-regions must be between 1 and 509"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--max-mem-regions=0"], "--max-mem-regions must be between 1 and 509"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--max-iotlb-entries=0"], "--max-iotlb-entries must be between"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--max-connections=0"], "--max-connections must be between 1 and 64"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--max-connections=65"], "--max-connections must be between 1 and 64"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--max-guest-memory=0"], "--max-guest-memory must be more than 0"),
        (["--socket-path=/tmp/a.sock", "--blk-file=/tmp/x.img", "--max-guest-memory=big"], "--max-guest-memory 'big' is not a size"),
    ])
    func badCommandLinesAreRefusedWithAReason(arguments: [String], reason: String) throws {
        let finished = try Self.runDaemon(arguments)
        #expect(finished.status == 64)  // EX_USAGE
        #expect(finished.output.contains(reason), "\(finished.output)")
    }

    /// --fd: the daemon serves on a listening socket it inherits (as a service manager or libvirt
    /// hands it over), and SIGTERM stops it with status 0.
    @Test func servesAnInheritedListeningSocket() throws {
        let scratch = try H.Scratch()
        let image = scratch.path("disk.img")
        try H.makeImage(at: image, size: 8 << 20)
        let socketPath = scratch.path("inherited.sock")
        let listener = try UnixSocket.listen(path: socketPath)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 onto 3 clears close-on-exec on the child's copy only.
        posix_spawn_file_actions_adddup2(&actions, listener.rawValue, 3)
        let daemon = try H.daemon
        let arguments = [daemon, "--fd=3", "--blk-file=\(image)", "--log-level=error"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        #expect(posix_spawn(&pid, daemon, &actions, nil, &argv, environ) == 0)
        defer {
            if pid > 0 {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }

        let session = try FrontEndSession.connect(path: socketPath)
        let negotiated = try session.negotiate(wanted: FrontEndSession.qemu72BlockFeaturesWithoutVIOMMU,
                                               wantedProtocol: FrontEndSession.qemu72ProtocolFeatures)
        #expect(negotiated.protocolFeatures.contains(.config))
        let configuration = try session.readConfig(offset: 0, size: 8)
        #expect(configuration == [0x00, 0x40, 0, 0, 0, 0, 0, 0])  // 8 MiB = 16384 sectors

        #expect(kill(pid, SIGTERM) == 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        pid = 0
        #expect(status == 0, "exit status \(status)")
    }

    /// Started with nothing but a socket and an image, the daemon offers what every front end
    /// tested asks for with its own defaults: 1024 queues (QEMU: one per vCPU), rings of any
    /// split-ring size, seg_max for a 128-entry ring, size_max 1 MiB, STATUS.
    @Test func defaultsCoverEveryFrontEnd() throws {
        let scratch = try H.Scratch()
        let socket = scratch.path("vhost.sock")
        try H.makeImage(at: scratch.path("disk.img"), size: 8 << 20)
        let daemon = try H.startDaemon(socket: socket, image: scratch.path("disk.img"), log: scratch.path("daemon.log"))
        defer { daemon.terminate(); daemon.waitUntilExit() }
        let session = try FrontEndSession.connect(path: socket)
        let negotiated = try session.negotiate(wanted: FrontEndSession.qemu72BlockFeaturesWithoutVIOMMU,
                                               wantedProtocol: FrontEndSession.qemu72ProtocolFeatures.union(.status))
        #expect(session.queueCount == 1024)
        #expect(negotiated.features.isSuperset(of: [.multiQueue, .sizeMax, .segMax]))
        #expect(negotiated.protocolFeatures.isSuperset(of: [.status, .resetDevice, .inflightShmfd, .configureMemSlots]))
        let configuration = try session.readConfig(offset: 8, size: 8)
        #expect(configuration == [0x00, 0x00, 0x10, 0x00, 126, 0, 0, 0])  // size_max 1 MiB, seg_max 126
        let log = try String(contentsOfFile: scratch.path("daemon.log"), encoding: .utf8)
        #expect(log.contains("queue-size=32768") && log.contains("queues=1024"), "\(log)")
    }
}
