#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostTestSupport

/// qcow2 served by the daemon binary (`--format=qcow2`) to real front ends: a QEMU guest on a
/// throwaway overlay over a compressed base image, libblkio clients (qemu-io, through QEMU's
/// virtio-blk-vhost-user driver) on images of every kind qemu-img makes, and the daemon killed
/// during allocating writes. qemu-img is the judge: `check` finds no errors (leaks only after a
/// kill), `compare` finds what QEMU's own qcow2 driver would have written.
@Suite("qcow2 images through the daemon")
struct Qcow2EndToEndTests {
    typealias H = GuestHarness

    @discardableResult
    static func qemuImg(_ qemu: QEMUBuild? = nil, _ arguments: [String]) throws -> String {
        let program = qemu?.tool("qemu-img") ?? "/usr/bin/qemu-img"
        let (status, output) = try runProgram(program, arguments)
        guard status == 0 else { throw Failure(message: "qemu-img \(arguments.joined(separator: " ")): \(output)") }
        return output
    }

    struct Failure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// The workflow of people who test guests: one base image (compressed, as cloud images
    /// ship), a fresh overlay per run (`qemu-img create -f qcow2 -b base.qcow2 -F qcow2
    /// run.qcow2`), served, thrown away. The guest reads the base's data through the overlay and
    /// writes scattered patterns; afterwards the overlay holds them, qemu-img check is clean and
    /// the base is untouched.
    @Test(arguments: QEMUBuild.matrix, H.cacheModes)
    func guestUsesAThrowawayOverlayOverACompressedBase(_ qemu: QEMUBuild, cache: String) throws {
        let scratch = try H.Scratch()
        let (check, lines) = try ScatteredWrites.prepare(in: scratch, cpus: 2)
        let base = scratch.path("base.qcow2")
        let overlay = scratch.path("run.qcow2")
        try Self.qemuImg(nil, ["convert", "-c", "-O", "qcow2", check.image, base])
        let baseBefore = try H.md5(try H.read(base, offset: 0, count: Int(try FileManager.default.attributesOfItem(atPath: base)[.size] as? Int ?? 0)))
        try Self.qemuImg(nil, ["create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", overlay])
        let workload = "set -e\n" + lines + "echo \"GUEST-NOTE: size $(blktool size $GUEST_DISK)\"\n"
        try workload.write(toFile: scratch.path("workload.sh"), atomically: true, encoding: .utf8)
        let daemonLog = scratch.path("daemon.log")
        let result = try H.run(qemu, ["--image", overlay, "--daemon", H.daemon, "--smp", "2",
                                      "--daemon-arg", "--format=qcow2", "--daemon-arg", "--log-level=info",
                                      "--daemon-log", daemonLog, "--workload", scratch.path("workload.sh"),
                                      "--add-file", "\(scratch.url.path):/data"] + H.cacheArguments(cache))
        // The guest's own checks, then the overlay's contents as qemu-img reads them.
        #expect(result.exitCode == 0, "\(result.output)")
        #expect(result.notes.contains("host data verified"), "\(result.notes)")
        #expect(result.notes.contains("size \(ScatteredWrites.imageSize)"))
        let contents = scratch.path("contents.raw")
        try Self.qemuImg(nil, ["convert", "-O", "raw", overlay, contents])
        let flattened = ScatteredWrites(image: contents)
        try flattened.verify(result)
        let checked = try runProgram("/usr/bin/qemu-img", ["check", overlay])
        #expect(checked.status == 0 && checked.output.contains("No errors were found"), "\(checked.output)")
        let baseAfter = try H.md5(try H.read(base, offset: 0, count: Int(try FileManager.default.attributesOfItem(atPath: base)[.size] as? Int ?? 0)))
        #expect(baseAfter == baseBefore, "the base image changed")
        let log = try String(contentsOfFile: daemonLog, encoding: .utf8)
        #expect(log.contains("format=qcow2") && log.contains("base.qcow2 (qcow2)"), "\(log)")
    }

    /// The kinds of image qemu-img makes, each served to a QEMU guest: `qemu-img convert` of
    /// the scattered-writes image with the kind's options (or an overlay over it); the guest
    /// reads the host's data and writes the scattered patterns (extended L2 entries: read-only,
    /// the host's data only); afterwards qemu-img finds the patterns and checks the image clean.
    struct ImageKind: CustomTestStringConvertible, Sendable {
        let name: String
        /// `qemu-img` arguments before the source and the destination (`convert` or `create`).
        let make: [String]
        var readOnly = false
        var testDescription: String { name }
    }

    static let imageKinds: [ImageKind] = [
        ImageKind(name: "cluster_size=4k", make: ["convert", "-O", "qcow2", "-o", "cluster_size=4096"]),
        ImageKind(name: "cluster_size=2M", make: ["convert", "-O", "qcow2", "-o", "cluster_size=2097152"]),
        ImageKind(name: "version 2", make: ["convert", "-O", "qcow2", "-o", "compat=0.10"]),
        ImageKind(name: "preallocation=metadata", make: ["convert", "-O", "qcow2", "-o", "preallocation=metadata"]),
        ImageKind(name: "preallocation=full", make: ["convert", "-O", "qcow2", "-o", "preallocation=full"]),
        ImageKind(name: "refcount_bits=1", make: ["convert", "-O", "qcow2", "-o", "refcount_bits=1"]),
        ImageKind(name: "refcount_bits=64", make: ["convert", "-O", "qcow2", "-o", "refcount_bits=64"]),
        ImageKind(name: "convert -c", make: ["convert", "-c", "-O", "qcow2"]),
        ImageKind(name: "overlay over raw", make: ["create", "-f", "qcow2", "-F", "raw", "-b"]),
        ImageKind(name: "extended_l2=on, read-only", make: ["convert", "-O", "qcow2", "-o", "extended_l2=on"], readOnly: true),
    ]

    /// On the newest QEMU of the matrix only: the format is the daemon's business, and the
    /// overlay test above covers every QEMU.
    @Test(arguments: QEMUBuild.matrix.suffix(1), imageKinds)
    func guestUsesEachKindOfImage(_ qemu: QEMUBuild, kind: ImageKind) throws {
        let scratch = try H.Scratch()
        let (check, lines) = try ScatteredWrites.prepare(in: scratch, cpus: 1)
        let image = scratch.path("disk.qcow2")
        try Self.qemuImg(nil, kind.make + [check.image, image])
        let hostCheck = """
            blktool pread $GUEST_DISK \(ScatteredWrites.hostDataOffset) \(ScatteredWrites.hostData.count) /tmp/host
            cmp /data/host /tmp/host
            echo "GUEST-NOTE: host data verified"

            """
        let workload = "set -e\n" + (kind.readOnly ? hostCheck : lines)
        try workload.write(toFile: scratch.path("workload.sh"), atomically: true, encoding: .utf8)
        let result = try H.run(qemu, ["--image", image, "--daemon", H.daemon, "--daemon-arg", "--format=qcow2",
                                      "--workload", scratch.path("workload.sh"), "--add-file", "\(scratch.url.path):/data"]
                                      + (kind.readOnly ? ["--read-only"] : []))
        #expect(result.exitCode == 0, "\(kind.name): \(result.output)")
        #expect(result.notes.contains("host data verified"), "\(kind.name): \(result.notes)")
        let checked = try runProgram("/usr/bin/qemu-img", ["check", image])
        #expect(checked.status == 0 && checked.output.contains("No errors were found"), "\(kind.name): \(checked.output)")
        guard !kind.readOnly else { return }
        let contents = scratch.path("contents.raw")
        try Self.qemuImg(nil, ["convert", "-O", "raw", image, contents])
        try ScatteredWrites(image: contents).verify(result)
    }

    /// Images as qemu-img makes them, served to libblkio's driver in qemu-io: the same patterned
    /// writes go through the daemon to one copy and through QEMU's own qcow2 driver to another;
    /// the copies compare identical, check clean, and read back in a second connection.
    struct LibblkioKind: CustomTestStringConvertible, Sendable {
        let name: String
        let make: [String]
        let readOnly: Bool
        var testDescription: String { name }
        /// Writes to it allocate clusters with nothing to copy (no backing file, nothing
        /// compressed or preallocated): `Qcow2Request`'s asynchronous allocation.
        var allocatesThroughTheEngine: Bool { ["cluster_size=4k", "cluster_size=64k", "cluster_size=2M",
                                                "refcount_bits=1", "refcount_bits=64"].contains(name) }
    }

    static let libblkioKinds: [LibblkioKind] = [
        LibblkioKind(name: "cluster_size=4k", make: ["create", "-f", "qcow2", "-o", "cluster_size=4096"], readOnly: false),
        LibblkioKind(name: "cluster_size=64k", make: ["create", "-f", "qcow2"], readOnly: false),
        LibblkioKind(name: "cluster_size=2M", make: ["create", "-f", "qcow2", "-o", "cluster_size=2097152"], readOnly: false),
        LibblkioKind(name: "preallocation=metadata", make: ["create", "-f", "qcow2", "-o", "preallocation=metadata"], readOnly: false),
        LibblkioKind(name: "preallocation=full", make: ["create", "-f", "qcow2", "-o", "preallocation=full"], readOnly: false),
        LibblkioKind(name: "refcount_bits=1", make: ["create", "-f", "qcow2", "-o", "refcount_bits=1"], readOnly: false),
        LibblkioKind(name: "refcount_bits=64", make: ["create", "-f", "qcow2", "-o", "refcount_bits=64"], readOnly: false),
        LibblkioKind(name: "backing file", make: ["create", "-f", "qcow2", "-b", "base.raw", "-F", "raw"], readOnly: false),
        LibblkioKind(name: "convert -c", make: ["convert", "-c", "-O", "qcow2", "TEXT"], readOnly: false),
        LibblkioKind(name: "extended_l2=on", make: ["create", "-f", "qcow2", "-o", "extended_l2=on"], readOnly: true),
    ]

    @Test(arguments: QEMUBuild.libblkioMatrix, libblkioKinds)
    func libblkioWritesMatchQemusOwnQcow2Driver(_ qemu: QEMUBuild, kind: LibblkioKind) throws {
        try qemu.requireInstalled()
        let writes = ["write -P 0x11 0 4k", "write -P 0x22 512 512", "write -P 0x33 3M 68k", "write -P 0x44 5243392 133120",
                      "write -z 7M 1M", "write -P 0x55 9M 1M", "write -P 0x66 16773120 4k"]
        do {
            let scratch = try H.Scratch()
            let base = scratch.path("base.raw")
            try H.write(H.pattern(count: 16 << 20, seed: 5), to: base)
            let ours = scratch.path("ours.qcow2")
            let reference = scratch.path("reference.qcow2")
            // Compressible bytes, so convert -c makes compressed clusters.
            let text = scratch.path("text.raw")
            try H.write(Array(String(repeating: "a compressible line of a disk image\n", count: (16 << 20) / 36 + 1).utf8.prefix(16 << 20)), to: text)
            let make = kind.make.map { $0 == "TEXT" ? text : $0 }
            try Self.qemuImg(nil, make + [ours] + (kind.make[0] == "create" ? ["16M"] : []))
            if kind.name == "extended_l2=on" {
                // Give it subclusters to read: some allocated, some zero, some not.
                try Self.qemuImg(qemu, ["info", ours])
                let (status, output) = try runProgram("/usr/bin/qemu-io", ["-f", "qcow2", "-c", "write -P 0x77 64k 8k",
                                                                            "-c", "write -z 200k 4k", ours])
                #expect(status == 0, "\(output)")
            }
            _ = try runProgram("/bin/cp", [ours, reference])
            let socket = scratch.path("vhost.sock")
            let log = scratch.path("daemon.log")
            // The newest QEMU's run bypasses the page cache: allocating writes then go through
            // the daemon's io_uring (Qcow2Request), the other's through its synchronous path.
            let direct = qemu.name == QEMUBuild.libblkioMatrix.last?.name
            let daemon = try H.startDaemon(socket: socket, image: ours,
                                           extra: ["--format=qcow2", "--log-level=info"] + (direct ? ["--cache=none"] : [])
                                               + (kind.readOnly ? ["--read-only"] : []), log: log)
            defer { if daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() } }
            let options = "driver=virtio-blk-vhost-user,path=\(socket),cache.direct=on"
            if kind.readOnly {
                let reads = try runProgram(qemu.tool("qemu-io"), ["-r", "--image-opts", options, "-c", "read -P 0x77 64k 8k",
                                                                  "-c", "read -P 0 200k 4k", "-c", "read -P 0 0 64k"])
                #expect(reads.status == 0 && !reads.output.contains("fail"), "\(kind.name): \(reads.output)")
            } else {
                let written = try runProgram(qemu.tool("qemu-io"), ["--image-opts", options] + writes.flatMap { ["-c", $0] })
                #expect(written.status == 0 && !written.output.contains("error"), "\(kind.name): \(written.output)")
                let direct = try runProgram("/usr/bin/qemu-io", ["-f", "qcow2"] + writes.flatMap { ["-c", $0] } + [reference])
                #expect(direct.status == 0, "\(direct.output)")
                let reads = try runProgram(qemu.tool("qemu-io"), ["--image-opts", options, "-c", "read -P 0x33 3M 68k",
                                                                  "-c", "read -P 0 7M 1M", "-c", "read -P 0x66 16773120 4k"])
                #expect(reads.status == 0 && !reads.output.contains("fail"), "\(kind.name): \(reads.output)")
            }
            daemon.terminate()
            daemon.waitUntilExit()
            #expect(daemon.terminationStatus == 0, "\(kind.name): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            if direct, kind.allocatesThroughTheEngine {
                let statistics = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                #expect(statistics.contains(/qcow2-engine=[1-9]/),
                        "\(kind.name): no qcow2 request went through the engine: \(statistics)")
            }
            let checked = try runProgram("/usr/bin/qemu-img", ["check", ours])
            #expect(checked.status == 0 && checked.output.contains("No errors were found"), "\(kind.name): \(checked.output)")
            let compared = try runProgram("/usr/bin/qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", ours, reference])
            #expect(compared.status == 0, "\(kind.name): \(compared.output)")
        }
    }

    /// The daemon killed (SIGKILL) at random moments while the benchmark front end writes at
    /// random into a fresh image with small clusters, where nearly every write allocates: each
    /// time, `qemu-img check` finds no corruption (leaked clusters at most), and the image is
    /// served again after `qemu-img check -r leaks`.
    @Test(arguments: H.cacheModes)
    func killedDuringAllocatingWritesLeavesAConsistentImage(cache: String) throws {
        let scratch = try H.Scratch(under: cache == "none" ? "/var/tmp" : nil)
        let image = scratch.path("disk.qcow2")
        try Self.qemuImg(nil, ["create", "-f", "qcow2", "-o", "cluster_size=4096", image, "256M"])
        var random = SystemRandomNumberGenerator()
        for round in 0..<4 {
            let socket = scratch.path("vhost-\(round).sock")
            let log = scratch.path("daemon-\(round).log")
            let daemon = try H.startDaemon(socket: socket, image: image,
                                           extra: ["--format=qcow2"] + (cache == "default" ? [] : ["--cache=\(cache)"]), log: log)
            let bench = Process()
            bench.executableURL = URL(fileURLWithPath: try TestBinary.benchFrontEnd.path)
            bench.arguments = ["run", "--socket", socket, "--rw", "randwrite", "--bs", "\([512, 4096, 12288][round % 3])",
                               "--runtime", "3", "--queues", "2", "--no-progress", "--seed", "\(round + 1)"]
            bench.standardOutput = FileHandle.nullDevice
            bench.standardError = FileHandle.nullDevice
            try bench.run()
            usleep(UInt32.random(in: 300_000...1_500_000, using: &random))
            kill(daemon.processIdentifier, SIGKILL)
            daemon.waitUntilExit()
            bench.waitUntilExit()
            let checked = try runProgram("/usr/bin/qemu-img", ["check", image])
            // 0: no errors; 3: leaked clusters only.
            #expect(checked.status == 0 || checked.status == 3, "round \(round): \(checked.output)")
            #expect(!checked.output.contains("ERROR"), "round \(round): \(checked.output)")
            if checked.status == 3 {
                let repaired = try runProgram("/usr/bin/qemu-img", ["check", "-r", "leaks", image])
                #expect(repaired.status == 0, "round \(round): \(repaired.output)")
            }
        }
        // Allocation happened: the image grew well past its empty size.
        let size = try FileManager.default.attributesOfItem(atPath: image)[.size] as? Int ?? 0
        #expect(size > 4 << 20, "only \(size) bytes: the writes did not allocate")
    }
}
