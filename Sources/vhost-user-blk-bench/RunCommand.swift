#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import VhostSystem
import VhostUserBlkBench

/// `vhost-user-blk-bench run`: one workload against one socket.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one workload against a vhost-user-blk back end's socket.",
        discussion: """
            Plays QEMU and the guest's virtio-blk driver: negotiates, shares memfd guest RAM, \
            sets up the split virtqueues and keeps --iodepth requests in flight on each. \
            Exit status: 0 clean, 1 the back end failed requests, broke the protocol or stalled, \
            or verify found mismatches.
            """)

    @Option(help: "The back end's vhost-user socket.")
    var socket: String

    @Option(help: "randread, randwrite, randrw, read, write or rw (fio's names).")
    var rw: String = "randread"

    @Option(help: "Percentage of reads for randrw and rw.")
    var rwmixread: Int = 50

    @Option(help: "Bytes per request (4096, 4k, 64k, 1m).")
    var bs: String = "4k"

    @Option(help: "Requests in flight per queue.")
    var iodepth: Int = 32

    @Option(help: "Virtqueues to drive, one thread each.")
    var queues: Int = 1

    @Option(help: "Seconds to run (default 5 unless --requests).")
    var runtime: Double?

    @Option(help: "Requests to complete in all, instead of a duration.")
    var requests: Int?

    @Flag(help: "Write every block of the span with a known pattern, read it all back, count mismatches.")
    var verify = false

    @Flag(help: "Only read back and check what an earlier --verify run with the same --seed and --size wrote.")
    var verifyOnly = false

    @Option(help: "eventfd (sleep on the call eventfd) or polling (spin on the used ring).")
    var completion: String = "eventfd"

    @Flag(inversion: .prefixedNo, help: "Use VIRTIO_RING_F_EVENT_IDX if the back end offers it.")
    var eventIdx = true

    @Flag(help: "Put each request in an indirect descriptor table (needs INDIRECT_DESC).")
    var indirect = false

    @Option(help: "off, premapped (all guest RAM mapped by one IOTLB UPDATE) or on-demand (buffers mapped when the back end sends MISS): play a guest behind a vIOMMU.")
    var iommu: String = "off"

    @Option(help: "Virtqueue size.")
    var queueSize: Int = 128

    @Option(help: "Bytes of the device to touch from offset 0 (default: all of it).")
    var size: String?

    @Option(help: "Seed for offsets and verify patterns.")
    var seed: UInt64 = 1

    @Option(help: "Name of the back end in the report.")
    var label: String = "back end"

    @Option(help: "The back end's process id, to report its CPU time.")
    var backendPid: Int32?

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(help: "No progress line on standard error.")
    var noProgress = false

    func workload() throws -> Workload {
        var workload = Workload()
        switch rw {
        case "randread": workload.pattern = .random; workload.mix = .read
        case "randwrite": workload.pattern = .random; workload.mix = .write
        case "randrw": workload.pattern = .random; workload.mix = .mixed(readPercent: rwmixread)
        case "read": workload.pattern = .sequential; workload.mix = .read
        case "write": workload.pattern = .sequential; workload.mix = .write
        case "rw": workload.pattern = .sequential; workload.mix = .mixed(readPercent: rwmixread)
        default: throw ValidationError("--rw must be randread, randwrite, randrw, read, write or rw, not '\(rw)'")
        }
        guard let parsed = ByteSize.parse(bs), let blockSize = Int(exactly: parsed) else {
            throw ValidationError("--bs '\(bs)' is not a size")
        }
        workload.blockSize = blockSize
        workload.queueDepth = iodepth
        workload.queueCount = queues
        if runtime != nil, requests != nil { throw ValidationError("give --runtime or --requests, not both") }
        workload.limit = requests.map { .requests($0) } ?? .seconds(runtime ?? 5)
        workload.verify = verify || verifyOnly
        workload.verifyOnly = verifyOnly
        guard let mode = CompletionMode(rawValue: completion) else {
            throw ValidationError("--completion must be eventfd or polling, not '\(completion)'")
        }
        workload.completion = mode
        workload.eventIndex = eventIdx
        workload.indirect = indirect
        workload.queueSize = queueSize
        guard let mode = IOMMUMode(rawValue: iommu) else {
            throw ValidationError("--iommu must be off, premapped or on-demand, not '\(iommu)'")
        }
        workload.iommu = mode
        if let size {
            guard let span = ByteSize.parse(size) else { throw ValidationError("--size '\(size)' is not a size") }
            workload.span = span
        }
        workload.seed = seed
        do {
            try workload.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return workload
    }

    func run() throws {
        let runner = BenchRunner(socketPath: socket, workload: try workload(), label: label, backEndPID: backendPid)
        let showProgress = !noProgress
        let report: BenchReport
        do {
            report = try runner.run { elapsed, completed in
                guard showProgress else { return }
                let line = String(format: "%6.1f s  %d requests  %.1fk IOPS so far\n", elapsed, completed,
                                  Double(completed) / elapsed / 1000)
                FileHandle.standardError.write(Data(line.utf8))
            }
        } catch {
            FileHandle.standardError.write(Data("vhost-user-blk-bench: \(error)\n".utf8))
            throw ExitCode(1)
        }
        print(json ? report.json() : report.description)
        if !report.clean { throw ExitCode(1) }
    }
}
