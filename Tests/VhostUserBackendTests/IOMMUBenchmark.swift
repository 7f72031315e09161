import Foundation
import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore

/// 4 KiB reads at queue depth 32 through the test front end, with and without the vIOMMU
/// (ACCESS_PLATFORM, everything mapped up front, so no misses: the cost measured is the
/// IOTLB translation per buffer). Runs only with VHOST_USER_BENCH=1; see docs/benchmarks.md.
extension BackEndIntegration {
    @Suite("IOMMU cost benchmark")
    struct IOMMUBenchmark {
        static let enabled = ProcessInfo.processInfo.environment["VHOST_USER_BENCH"] == "1"
        static let seconds = Double(ProcessInfo.processInfo.environment["VHOST_USER_BENCH_SECONDS"] ?? "") ?? 5

        @Test("4 KiB QD32 reads, IOMMU off vs on", .enabled(if: enabled))
        func readsAtQD32() throws {
            var results: [(String, Double)] = []
            for round in 0..<2 {
                do {
                    let backEnd = try InProcessBackEnd()
                    defer { backEnd.stop() }
                    let session = try backEnd.connect()
                    let negotiated = try QEMUSequence.connect(session)
                    let guest = try BlockGuest(eventIndex: negotiated.features.contains(.eventIndex))
                    try QEMUSequence.start(session, guest: guest, features: negotiated.features)
                    results.append(("off#\(round)", try Self.measure(guest)))
                }
                do {
                    let scene = try IOMMUScene(mapEverything: true)
                    results.append(("on#\(round)", try Self.measure(scene.guest)))
                    #expect(scene.missesSeen.isEmpty)
                }
            }
            for (name, iops) in results {
                print("BENCH iommu=\(name) 4KiB-read QD32 IOPS=\(Int(iops)) MiB/s=\(String(format: "%.1f", iops * 4096 / 1_048_576))")
            }
        }

        /// Batches of 32 reads (for `seconds`, or 150 000 requests, whichever comes first) of 4 KiB at pseudo-random sectors into 32 fixed buffers on queue 0.
        static func measure(_ guest: BlockGuest) throws -> Double {
            let buffers = try (0..<32).map { _ in try guest.ram.allocate(size: 4096, alignment: 4096).guestPhysicalAddress }
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            var completed = 0
            let start = ContinuousClock.now
            let limit = start + .milliseconds(Int(seconds * 1000))
            // Each request takes a fresh header and status byte from guest RAM (a bump allocator):
            // at most 150 000 requests per run (about 5 MiB of the 16 MiB).
            while ContinuousClock.now < limit && completed < 150_000 {
                var pending: [BlockGuest.Pending] = []
                for (index, buffer) in buffers.enumerated() {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    let sector = (state >> 33) % UInt64(InProcessBackEnd.imageSize / 4096) * 8
                    pending.append(try guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: sector,
                                                    inLength: 4096, inAddress: buffer, kick: index == buffers.count - 1))
                }
                let done = try guest.complete(pending)
                guard done.allSatisfy({ $0.status == BlockGuest.statusOK }) else {
                    Issue.record("a read failed")
                    return 0
                }
                completed += done.count
            }
            let elapsed = ContinuousClock.now - start
            let secondsElapsed = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return Double(completed) / secondsElapsed
        }
    }
}
