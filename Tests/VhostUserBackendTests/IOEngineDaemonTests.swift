import Testing
import VhostSystem

extension BackEndIntegration {
    @Suite("The daemon's I/O engines")
    struct IOEngineDaemonTests {
        @Test("with no --aio the daemon takes io_uring (this machine kind has it), says so, and serves")
        func defaultIsIOUring() throws {
            let daemon = try ChildDaemon()
            defer { daemon.stop() }
            expectServesNewFrontEnd(daemon)
            #expect(daemon.logEntry(containing: "aio=io_uring", after: 0, waitingUpTo: 1_000) != nil,
                    "\(daemon.transcript(after: 0))")
        }

        @Test("--aio forces an engine; each serves a front end in every cache mode, under the sandbox too",
              arguments: ["io_uring", "sync"], ["writeback", "none", "directsync", "unsafe"])
        func forcedEngineServes(engine: String, cache: String) throws {
            let daemon = try ChildDaemon(extraArguments: ["--aio=\(engine)", "--cache=\(cache)", "--sandbox"])
            defer { daemon.stop() }
            expectServesNewFrontEnd(daemon)
            for setting in ["aio=\(engine)", "cache=\(cache)"] {
                #expect(daemon.logEntry(containing: setting, after: 0, waitingUpTo: 1_000) != nil, "\(daemon.transcript(after: 0))")
            }
        }
    }
}
