#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

extension BackEndIntegration {
    /// SIGTERM / SIGINT on the daemon binary: it stops taking requests, finishes those it took,
    /// completes them to the driver, removes its socket file and exits 0.
    @Suite("Shutdown on a signal")
    struct ShutdownTests {
        @Test("at SIGTERM or SIGINT the request being served completes, nothing more is taken, the daemon exits 0",
              arguments: [SIGTERM, SIGINT])
        func signalFinishesTheRequestInFlight(signal: Int32) throws {
            // Slow storage: each write takes 300 ms. The signal is sent once the inflight area
            // shows the worker took the first write (it records the fetch before serving), so it
            // lands while that write is being served. The second was made available with it, the
            // third after the signal: neither is taken (they stay in the ring for the next
            // instance, see docs/recovery.md).
            let daemon = try ChildDaemon(extraArguments: ["--io-delay-us=300000"])
            defer { daemon.stop() }
            let session = try daemon.connect()
            let negotiated = try QEMUSequence.connect(session)
            let answer = try #require(try session.exchange(.getInflightFd(InflightDescription(
                mmapSize: 0, mmapOffset: 0, numQueues: UInt16(InProcessBackEnd.queueCount), queueSize: UInt16(InProcessBackEnd.queueSize)))))
            guard case .inflight(let area) = answer.reply, let areaFile = answer.descriptors.first else {
                Issue.record("no inflight area: \(answer.reply)")
                return
            }
            let areaMapping = try MemoryMapping(descriptor: areaFile, offset: area.mmapOffset, length: area.mmapSize)
            try session.send(.setInflightFd(area), descriptors: [areaFile.rawValue], needReply: true)
            let started = StartedFrontEnd(session: session, guest: try BlockGuest(
                regions: [GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(0), size: 2 << 20)],
                eventIndex: negotiated.features.contains(.eventIndex)), features: negotiated.features)
            try QEMUSequence.start(session, guest: started.guest, features: negotiated.features)
            let first = pattern(count: 4096, seed: 91)
            let a = try started.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 64, outData: first)
            let region = SplitInflightRegion(base: areaMapping.base, queueSize: started.guest.queueSize)
            let deadline = ContinuousClock.now + .seconds(10)
            while !region.isInflight(a.head), ContinuousClock.now < deadline { usleepMilliseconds(1) }
            try #require(region.isInflight(a.head), "the worker never took the first write")
            _ = try started.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 72,
                                         outData: pattern(count: 4096, seed: 92))
            kill(daemon.pid, signal)
            _ = try started.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 80,
                                         outData: pattern(count: 4096, seed: 93))
            let done = try started.guest.complete([a], milliseconds: 5_000)
            #expect(done[0].status == BlockGuest.statusOK)
            daemon.process.waitUntilExit()
            #expect(daemon.process.terminationStatus == 0)
            #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "socket file removed")
            // Exactly one request completed: used->idx is 1; the other two never reached the image.
            let used = started.guest.queues[0].usedRing.pointer
            #expect(RingMemory.loadUInt16(used, offset: SplitRing.usedIndexOffset) == 1)
            let image = try FileHandle(forReadingFrom: URL(fileURLWithPath: daemon.imagePath))
            try image.seek(toOffset: 64 * 512)
            #expect([UInt8](try image.read(upToCount: 4096) ?? Data()) == first)
            try image.seek(toOffset: 72 * 512)
            #expect([UInt8](try image.read(upToCount: 8192) ?? Data()) == [UInt8](repeating: 0, count: 8192))
        }
    }
}
