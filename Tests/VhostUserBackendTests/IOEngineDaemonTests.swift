import Testing
import VhostSystem

extension DaemonBinaryTests {
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

        @Test("where io_uring is refused (seccomp: ENOSYS) the daemon falls back to the thread pool, says why, and serves; --aio=io_uring refuses to start")
        func fallsBackToThreadsWithoutIOUring() throws {
            let daemon = try ChildDaemon(withoutIOUring: true)
            defer { daemon.stop() }
            expectServesNewFrontEnd(daemon)
            #expect(daemon.logEntry(containing: "io_uring is not available; queues use a thread pool", after: 0,
                                    waitingUpTo: 1_000) != nil, "\(daemon.transcript(after: 0))")
            #expect(daemon.logEntry(containing: "aio=threads", after: 0, waitingUpTo: 1_000) != nil,
                    "\(daemon.transcript(after: 0))")
            // The queues served through the pool (each handler logs its engine when it goes).
            #expect(daemon.logEntry(containing: "queue statistics", after: 0, waitingUpTo: 5_000).map { $0.contains("aio=threads") } == true,
                    "\(daemon.transcript(after: 0))")

            #expect(throws: ChildDaemonError.self) {
                _ = try ChildDaemon(extraArguments: ["--aio=io_uring"], withoutIOUring: true)
            }
        }

        @Test("--aio forces an engine; each serves a front end in every cache mode, under the sandbox too",
              arguments: ["io_uring", "threads", "sync"], ["writeback", "none", "directsync", "unsafe"])
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
