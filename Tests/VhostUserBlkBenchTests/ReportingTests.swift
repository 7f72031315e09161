import Testing
@testable import VhostUserBlkBench

@Suite("Benchmark workloads, medians and the comparison document")
struct ReportingTests {
    static func invalid() -> [(Workload, String)] {
        func changed(_ change: (inout Workload) -> Void) -> Workload {
            var workload = Workload()
            change(&workload)
            return workload
        }
        return [
            (changed { $0.blockSize = 1000 }, "block size 1000"),
            (changed { $0.queueDepth = 43 }, "needs 129 descriptors, the ring has 128 (use indirect"),
            (changed { $0.queueSize = 100 }, "queue size 100"),
            (changed { $0.queueCount = 0 }, "queue count 0"),
            (changed { $0.limit = .seconds(0) }, "duration 0.0"),
            (changed { $0.limit = .requests(0) }, "request count 0"),
            (changed { $0.span = 100 }, "span 100"),
        ]
    }

    @Test(arguments: invalid())
    func invalidWorkloadsSayWhy(workload: Workload, reason: String) {
        do {
            try workload.validate()
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains(reason), "\(error)")
        }
    }

    @Test func indirectDescriptorsAllowAFullRing() throws {
        var workload = Workload()
        workload.indirect = true
        workload.queueDepth = 128
        try workload.validate()
    }

    @Test("qemu-img bench's wall time is read from its completion line; other output gives none")
    func qemuImgBenchOutput() {
        let output = """
            Sending 400000 read requests, 4096 bytes each, 32 in parallel (starting at offset 0, step size 4096)
            Run completed in 3.456 seconds.

            """
        #expect(QemuImgBench.completionSeconds(in: output) == 3.456)
        #expect(QemuImgBench.completionSeconds(in: "qemu-img: Could not open: no such socket\n") == nil)
        var workload = Workload()
        workload.limit = .seconds(2)
        workload.mix = .write
        workload.queueDepth = 16
        let bench = QemuImgBench(qemuImg: "/bin/qemu-img", socketPath: "/tmp/s.sock", workload: workload, label: "x")
        #expect(bench.requestCount == 200_000)
        #expect(bench.arguments == ["bench", "--image-opts", "driver=virtio-blk-vhost-user,path=/tmp/s.sock,cache.direct=on",
                                    "-c", "200000", "-d", "16", "-s", "4096", "-w"])
    }

    @Test func medians() {
        #expect(median([]) == 0)
        #expect(median([3]) == 3)
        #expect(median([5, 1, 3]) == 3)
        #expect(median([4, 1, 3, 2]) == 2.5)
    }

    @Test("the config space is read little-endian, with the fields its features announce")
    func deviceInfo() throws {
        var bytes = [UInt8](repeating: 0, count: 36)
        bytes[0] = 0x00; bytes[1] = 0x10  // 4096 sectors
        bytes[20] = 0x00; bytes[21] = 0x10  // blk_size 4096
        bytes[34] = 4  // num_queues
        let info = try BlockDeviceInfo(config: bytes, readOnly: true, hasBlockSize: true, hasMultiQueue: true)
        #expect(info == BlockDeviceInfo(capacityBytes: 4096 * 512, logicalBlockSize: 4096, queueCount: 4, readOnly: true))
        let plain = try BlockDeviceInfo(config: bytes, readOnly: false, hasBlockSize: false, hasMultiQueue: false)
        #expect(plain.logicalBlockSize == 512 && plain.queueCount == 1)
        #expect(throws: BenchError.deviceUnsuitable("config space of 8 bytes is too short")) {
            try BlockDeviceInfo(config: Array(bytes[0..<8]), readOnly: false, hasBlockSize: false, hasMultiQueue: false)
        }
    }

    @Test("verify patterns differ by seed and by block, and one flipped byte is caught")
    func verifyPattern() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        buffer.withUnsafeMutableBytes { VerifyPattern.fill($0.baseAddress!, count: 4096, seed: 1, block: 9) }
        buffer.withUnsafeBytes { raw in
            #expect(VerifyPattern.matches(raw.baseAddress!, count: 4096, seed: 1, block: 9))
            #expect(!VerifyPattern.matches(raw.baseAddress!, count: 4096, seed: 2, block: 9))
            #expect(!VerifyPattern.matches(raw.baseAddress!, count: 4096, seed: 1, block: 10))
        }
        buffer[4000] ^= 1
        buffer.withUnsafeBytes { #expect(!VerifyPattern.matches($0.baseAddress!, count: 4096, seed: 1, block: 9)) }
    }

    private func result(ours: [Double], theirs: [Double]) -> BackEndComparison {
        func report(_ iops: Double, _ label: String) -> BenchReport {
            BenchReport(label: label, workload: Workload(), summary: "", device: BlockDeviceInfo(capacityBytes: 1, logicalBlockSize: 512, queueCount: 1, readOnly: false),
                        elapsedSeconds: 1, requests: Int(iops), reads: Int(iops), writes: 0, iops: iops, mebibytesPerSecond: 0,
                        latency: .init(p50: 1, p99: 2, p999: 3, max: 4, mean: 1), frontEndCPUSeconds: 0, backEndCPUSeconds: 0.5,
                        ioErrors: 0, mismatches: 0, perQueue: [Int(iops)], iotlbMissesAnswered: 0)
        }
        let row = BackEndComparison.Row(
            comparisonCase: ComparisonCase(name: "4k randread QD32", workload: Workload(), nullDisk: false),
            samples: ["ours": ours.map { report($0, "ours") }, "qsd": theirs.map { report($0, "qsd") }])
        return BackEndComparison(rows: [row], idleResidentBytes: ["ours": [8 << 20], "qsd": [9 << 20]], machine: "test machine",
                                 command: "make bench", repetitions: ours.count, seconds: 5, imageBytes: 512 << 20)
    }

    @Test("the table quotes medians and their ratio; the section replaces the old one and keeps the rest")
    func document() {
        let document = ComparisonDocument(result: result(ours: [300_000, 100_000, 310_000], theirs: [100_000, 99_000, 150_000]),
                                          plotName: "plot.svg")
        #expect(document.result.rows[0].ratio == 3)
        #expect(document.markdown.contains("| 4k randread QD32 | 300.0k | 100.0k | **3.00×** |"))
        #expect(document.markdown.contains("ours 8.0 MiB, qemu-storage-daemon 9.0 MiB"))
        let old = "# Benchmarks\n\nintro\n\n\(ComparisonDocument.beginMarker)\nold table\n\(ComparisonDocument.endMarker)\n\n## Later\n"
        let merged = document.merged(into: old)
        #expect(!merged.contains("old table"))
        #expect(merged.hasPrefix("# Benchmarks\n\nintro\n\n"))
        #expect(merged.hasSuffix("\n\n## Later\n"))
        #expect(document.merged(into: merged) == merged)
        #expect(document.merged(into: "# Benchmarks\n").contains(ComparisonDocument.beginMarker))
        let svg = document.svg
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        #expect(svg.contains("3.00× (300k vs 100k)"))
    }
}
