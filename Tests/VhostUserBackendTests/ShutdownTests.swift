#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostUserFrontEnd

extension BackEndIntegration {
    /// SIGTERM / SIGINT on the daemon binary: it stops taking requests, finishes those it took,
    /// completes them to the driver, removes its socket file and exits 0.
    @Suite("Shutdown on a signal")
    struct ShutdownTests {
        @Test("requests in flight at SIGTERM or SIGINT complete before the daemon exits 0; later ones are not taken",
              arguments: [SIGTERM, SIGINT])
        func signalDrainsInFlightRequests(signal: Int32) throws {
            // Slow storage: each write takes 300 ms, so the signal lands while the worker holds them.
            let daemon = try ChildDaemon(extraArguments: ["--io-delay-us=300000"])
            defer { daemon.stop() }
            let started = try StartedFrontEnd.start(daemon)
            let first = pattern(count: 4096, seed: 91)
            let second = pattern(count: 4096, seed: 92)
            let a = try started.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 64, outData: first)
            let b = try started.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 72, outData: second)
            usleep(100_000)  // the worker is inside the first write's delay
            kill(daemon.pid, signal)
            // Made available after the signal: not taken (the worker finishes its batch and stops).
            let late = try started.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 80,
                                                outData: pattern(count: 4096, seed: 93))
            let done = try started.guest.complete([a, b], milliseconds: 5_000)
            #expect(done.allSatisfy { $0.status == BlockGuest.statusOK })
            daemon.process.waitUntilExit()
            #expect(daemon.process.terminationStatus == 0)
            #expect(!FileManager.default.fileExists(atPath: daemon.socketPath), "socket file removed")
            let image = try FileHandle(forReadingFrom: URL(fileURLWithPath: daemon.imagePath))
            try image.seek(toOffset: 64 * 512)
            #expect([UInt8](try image.read(upToCount: 4096) ?? Data()) == first)
            try image.seek(toOffset: 72 * 512)
            #expect([UInt8](try image.read(upToCount: 4096) ?? Data()) == second)
            #expect(throws: (any Error).self, "the request made after the signal was not served") {
                try started.guest.complete([late], milliseconds: 300)
            }
        }
    }
}
