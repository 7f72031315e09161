#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostUserFrontEnd
import VirtioCore

extension BackEndIntegration {
    /// SIGTERM / SIGINT on the daemon binary: it stops taking requests, finishes those it took,
    /// completes them to the driver, removes its socket file and exits 0.
    @Suite("Shutdown on a signal")
    struct ShutdownTests {
        @Test("at SIGTERM or SIGINT the request being served completes, nothing more is taken, the daemon exits 0",
              arguments: [SIGTERM, SIGINT])
        func signalFinishesTheRequestInFlight(signal: Int32) throws {
            // Slow storage: each write takes 300 ms, so the signal lands while the worker holds
            // the first one. The second was made available with it, the third after the signal:
            // neither is taken (they stay in the ring for the next instance, see docs/recovery.md).
            let daemon = try ChildDaemon(extraArguments: ["--io-delay-us=300000"])
            defer { daemon.stop() }
            let started = try StartedFrontEnd.start(daemon)
            let first = pattern(count: 4096, seed: 91)
            let a = try started.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 64, outData: first)
            usleep(100_000)  // the worker is inside the first write's delay
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
