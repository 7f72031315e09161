#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// The same byte-exact checks as `scatteredWritesReachTheImageByteExact`, with the disk behind
/// QEMU's emulated Intel IOMMU (`run-guest.sh --iommu`): every ring and buffer address the daemon
/// sees is an IOVA, translated through the IOTLB that QEMU fills with UPDATEs answering the
/// daemon's MISSes and cuts with INVALIDATEs. On every QEMU build of the matrix.
extension GuestDiskTests {
    struct IOMMUCase: CustomTestStringConvertible, Sendable {
        var mode: String
        var queues: Int
        var testDescription: String { "\(mode) invalidation, \(queues) queue(s)" }
    }

    /// Lazy is the guest's default (DMA-FQ: unmaps are flushed later, domain-wide, reaching
    /// the daemon as device-IOTLB invalidations of whole ranges); strict flushes every unmap.
    static let cases = [IOMMUCase(mode: "strict", queues: 1), IOMMUCase(mode: "strict", queues: 2),
                        IOMMUCase(mode: "lazy", queues: 1), IOMMUCase(mode: "lazy", queues: 2)]

    @Test(arguments: QEMUBuild.matrix, cases)
    func scatteredWritesThroughTheVIOMMUReachTheImageByteExact(_ qemu: QEMUBuild, _ iommu: IOMMUCase) throws {
        let scratch = try H.Scratch()
        let daemonLog = scratch.path("daemon.log")
        let (check, lines) = try ScatteredWrites.prepare(in: scratch, cpus: iommu.queues)
        // The guest really translates through the IOMMU: the DMAR unit is registered, the disk's
        // PCI function sits in a DMA domain (DMA-FQ when lazy, DMA when strict).
        var workload = """
            set -e
            echo "GUEST-NOTE: iommu-class $(ls /sys/class/iommu | tr '\\n' ' ')"
            pci=$(readlink -f /sys/block/vda/device/..)
            echo "GUEST-NOTE: domain $(cat $pci/iommu_group/type)"
            echo "GUEST-NOTE: hw-queues $(ls /sys/block/vda/mq | wc -l)"

            """
        workload += lines
        try workload.write(toFile: scratch.path("workload.sh"), atomically: true, encoding: .utf8)

        let result = try H.run(qemu, ["--image", check.image, "--daemon", H.daemon, "--workload", scratch.path("workload.sh"),
                                "--add-file", "\(scratch.url.path):/data", "--iommu", iommu.mode,
                                "--smp", "\(iommu.queues)",
                                "--daemon-arg=--log-level=info", "--daemon-arg=--sandbox", "--daemon-log", daemonLog])
        try check.verify(result)
        #expect(result.notes.contains { $0.hasPrefix("iommu-class dmar") }, "\(result.notes)")
        #expect(result.notes.contains(iommu.mode == "strict" ? "domain DMA" : "domain DMA-FQ"), "\(result.notes)")
        #expect(result.notes.contains("hw-queues \(iommu.queues)"))

        // The daemon saw IOTLB traffic (its count line at the end of the connection), and with
        // two queues both carried writes.
        let log = (try? String(contentsOfFile: daemonLog, encoding: .utf8)) ?? ""
        let traffic = try #require(log.split(separator: "\n").last { $0.contains("IOTLB traffic") }, "\(log)")
        func count(_ key: String, in line: Substring) -> Int {
            guard let range = line.range(of: " \(key)=") else { return -1 }
            return Int(line[range.upperBound...].prefix { $0.isNumber }) ?? -1
        }
        #expect(count("updates", in: traffic) > 0, "\(traffic)")
        #expect(count("misses", in: traffic) > 0, "\(traffic)")
        #expect(count("failedMissAcks", in: traffic) == 0, "\(traffic)")
        // Both modes reuse IOVAs, so both must have cut translations: in lazy mode these are
        // the domain-wide flushes, which reach a vhost back end only when ATS is enabled.
        #expect(count("invalidations", in: traffic) > 0, "\(traffic)")
        let statistics = log.split(separator: "\n").filter { $0.contains("queue statistics") }
        for queue in 0..<iommu.queues {
            #expect(statistics.contains { count("queue", in: $0) == queue && count("write", in: $0) > 0 }, "\(statistics)")
        }
        #expect(!log.contains("IOTLB miss not answered"), "\(log)")
        #expect(!log.contains("permission fault"), "\(log)")
    }
}
