#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VhostTestSupport
import Testing
import VhostUserBlkBench

/// libblkio as a second, independent front end, without a VM: QEMU's `virtio-blk-vhost-user`
/// block driver (libblkio's virtio-blk-vhost-user driver underneath) in qemu-io and qemu-img of
/// each Debian 13 build, with their defaults (libblkio asks for 256-entry rings, sends memory
/// with ADD_MEM_REG only, and needs REPLY_ACK, CONFIG and CONFIGURE_MEM_SLOTS). The driver
/// refuses `cache.direct=off` ("not supported"), so every image option string says
/// `cache.direct=on`, as its users must. The daemon runs with its defaults.
@Suite("libblkio front end (qemu-io, qemu-img)")
struct LibblkioTests {
    typealias H = GuestHarness

    /// A daemon with default options on a fresh image, stopped (SIGTERM) when the test ends.
    final class Served {
        let scratch: H.Scratch
        let image: String
        let socket: String
        let log: String
        let daemon: Process

        init(size: Int = 16 << 20, content: [UInt8]? = nil) throws {
            scratch = try H.Scratch()
            image = scratch.path("disk.img")
            socket = scratch.path("vhost.sock")
            log = scratch.path("daemon.log")
            if let content {
                try H.write(content, to: image)
            } else {
                try H.makeImage(at: image, size: size)
            }
            daemon = try H.startDaemon(socket: socket, image: image, extra: ["--log-level=info"], log: log)
        }

        /// The `--image-opts` string that opens the disk through libblkio.
        var imageOptions: String { "driver=virtio-blk-vhost-user,path=\(socket),cache.direct=on" }

        /// Stops the daemon and returns its log (the per-queue statistics come at the end of
        /// each connection).
        func stop() throws -> String {
            daemon.terminate()
            daemon.waitUntilExit()
            #expect(daemon.terminationStatus == 0)
            return try String(contentsOfFile: log, encoding: .utf8)
        }

        deinit {
            if daemon.isRunning {
                daemon.terminate()
                daemon.waitUntilExit()
            }
        }
    }

    /// qemu-io with `commands` (each one `-c`) on the served disk.
    static func qemuIO(_ qemu: QEMUBuild, _ served: Served, _ commands: [String]) throws -> (status: Int32, output: String) {
        try qemu.requireInstalled()
        return try runProgram(qemu.tool("qemu-io"), ["--image-opts", served.imageOptions] + commands.flatMap { ["-c", $0] })
    }

    static let writes: [(offset: Int, length: Int, pattern: UInt8)] = [
        (0, 4096, 0x11), (512, 512, 0x22), (3 << 20 | 4096, 64 << 10, 0x33), (5 << 20 + 1536, 130 << 10, 0x44),
        (9 << 20, 1 << 20, 0x55), ((16 << 20) - 4096, 4096, 0x66),
    ]

    /// Patterned writes at scattered offsets (sector- and page-aligned, 512 B to 1 MiB, up to
    /// the last sector), then a second qemu-io (a new connection) reads each back with pattern
    /// verification; the host finds exactly those bytes in the image and zeroes around them.
    @Test(arguments: QEMUBuild.libblkioMatrix)
    func patternedWritesReadBackInQemuIOAndOnTheHost(_ qemu: QEMUBuild) throws {
        let served = try Served()
        let written = try Self.qemuIO(qemu, served, Self.writes.map { "write -P \($0.pattern) \($0.offset) \($0.length)" })
        #expect(written.status == 0, "\(written.output)")
        // The 512-byte write lands inside the first 4 KiB one: read back what the disk now holds.
        var expected = [UInt8](repeating: 0, count: 16 << 20)
        for write in Self.writes {
            expected.replaceSubrange(write.offset..<(write.offset + write.length),
                                     with: repeatElement(write.pattern, count: write.length))
        }
        let reads = Self.writes.dropFirst().map { "read -P \($0.pattern) \($0.offset) \($0.length)" }
            + ["read -P 17 0 512", "read -P 17 1024 3072", "read -P 0 4096 4096"]
        let read = try Self.qemuIO(qemu, served, reads)
        #expect(read.status == 0, "\(read.output)")
        #expect(!read.output.contains("verification failed"), "\(read.output)")
        let log = try served.stop()
        #expect(H.difference(try H.read(served.image, offset: 0, count: 16 << 20), expected) == nil)
        #expect(log.components(separatedBy: "front end connected").count - 1 == 2, "\(log)")
        #expect(!log.contains("closing the connection") && !log.contains("ring refused"), "\(log)")
    }

    /// `qemu-img convert` copies a host image into the disk and the disk out to a new file;
    /// `qemu-img compare` finds the disk identical to the source, and so does the host, byte for
    /// byte, in the daemon's image and in the copy out.
    @Test(arguments: QEMUBuild.libblkioMatrix)
    func convertIntoAndOutOfTheDiskAndCompare(_ qemu: QEMUBuild) throws {
        try qemu.requireInstalled()
        let served = try Served()
        var source = H.pattern(count: 16 << 20, seed: 123)
        // A zero stretch, which convert may skip or write as zeroes: either way it must read zero.
        source.replaceSubrange((4 << 20)..<(6 << 20), with: repeatElement(0, count: 2 << 20))
        let sourcePath = served.scratch.path("source.raw")
        try H.write(source, to: sourcePath)
        let into = try runProgram(qemu.tool("qemu-img"), ["convert", "-n", "-f", "raw", "--target-image-opts",
                                                             sourcePath, served.imageOptions])
        #expect(into.status == 0, "\(into.output)")
        let compared = try runProgram(qemu.tool("qemu-img"), ["compare", "--image-opts",
                                                                 "driver=file,filename=\(sourcePath)", served.imageOptions])
        #expect(compared.status == 0, "\(compared.output)")
        #expect(compared.output.contains("Images are identical"), "\(compared.output)")
        let copyPath = served.scratch.path("copy.raw")
        let out = try runProgram(qemu.tool("qemu-img"), ["convert", "--image-opts", served.imageOptions,
                                                            "-O", "raw", copyPath])
        #expect(out.status == 0, "\(out.output)")
        _ = try served.stop()
        #expect(H.difference(try H.read(served.image, offset: 0, count: 16 << 20), source) == nil)
        #expect(H.difference(try H.read(copyPath, offset: 0, count: 16 << 20), source) == nil)
    }

    /// DISCARD and WRITE_ZEROES (plain and with unmap) from qemu-io: the ranges read back as
    /// zeroes through libblkio and on the host, their neighbours keep their data, and the
    /// daemon counts both request types.
    @Test(arguments: QEMUBuild.libblkioMatrix)
    func discardAndWriteZeroesReachTheImage(_ qemu: QEMUBuild) throws {
        let original = H.pattern(count: 8 << 20, seed: 9)
        let served = try Served(content: original)
        let result = try Self.qemuIO(qemu, served, [
            "discard 1M 1M", "write -z 3M 512k", "write -z -u 5M 1M", "flush",
            "read -P 0 1M 1M", "read -P 0 3M 512k", "read -P 0 5M 1M",
        ])
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("verification failed") && !result.output.contains("error"), "\(result.output)")
        let log = try served.stop()
        var expected = original
        for (offset, length) in [(1 << 20, 1 << 20), (3 << 20, 512 << 10), (5 << 20, 1 << 20)] {
            expected.replaceSubrange(offset..<(offset + length), with: repeatElement(0, count: length))
        }
        #expect(H.difference(try H.read(served.image, offset: 0, count: 8 << 20), expected) == nil)
        #expect(GuestDiskTests.counter("discard", in: log) >= 1, "\(log)")
        #expect(GuestDiskTests.counter("write-zeroes", in: log) >= 2, "\(log)")
    }

    /// `make bench`'s libblkio cases: qemu-img bench's requests all reach the daemon, and its
    /// wall time becomes the report's IOPS.
    @Test(arguments: QEMUBuild.libblkioMatrix)
    func qemuImgBenchDrivesTheDaemon(_ qemu: QEMUBuild) throws {
        try qemu.requireInstalled()
        let served = try Served()
        for write in [false, true] {
            var workload = Workload()
            workload.pattern = .sequential
            workload.mix = write ? .write : .read
            workload.queueDepth = 8
            workload.limit = .requests(3000)
            let report = try QemuImgBench(qemuImg: qemu.tool("qemu-img"), socketPath: served.socket, workload: workload,
                                          label: "ours", backEndPID: served.daemon.processIdentifier).run()
            #expect(report.requests == 3000 && report.iops > 0 && report.elapsedSeconds > 0, "\(report)")
            #expect(write ? report.writes == 3000 : report.reads == 3000)
            #expect((report.backEndCPUSeconds ?? -1) >= 0)
        }
        let log = try served.stop()
        #expect(GuestDiskTests.counter("read", in: log) >= 3000, "\(log)")
        #expect(GuestDiskTests.counter("write", in: log) >= 3000, "\(log)")
    }
}
