#if canImport(Glibc)
import Glibc
#endif

/// Proves a code path allocates nothing: the allocator calls of the measuring thread, counted by
/// the preloaded `libVhostAllocationCounter.so` (`Tests/VhostAllocationCounter`), must be zero in
/// every traced round; what other threads do meanwhile is counted apart and reported, never
/// mistaken for the path's. Before it is trusted the counter shows it works: a deliberate
/// allocation on this thread must be counted as this thread's, one on another thread as theirs.
///
/// `make test` runs each suite that uses it alone, with
/// `LD_PRELOAD=<bin>/libVhostAllocationCounter.so VHOST_USER_ALLOCATION_LOG=<file>`, and fails
/// when a suite did not write its line to that file (a suite that did not run proves nothing).
public struct AllocationCounter {
    /// What one traced round saw.
    public struct Round: Equatable, CustomStringConvertible, Sendable {
        public var allocations: Int
        public var frees: Int
        public var otherThreadAllocations: Int
        public var otherThreadFrees: Int
        /// No call into the allocator from the measured thread.
        public var isClean: Bool { allocations == 0 && frees == 0 }
        public var description: String {
            "\(allocations) allocations, \(frees) frees (other threads: \(otherThreadAllocations), \(otherThreadFrees))"
        }
    }

    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    private typealias Start = @convention(c) () -> Void
    private typealias Stop = @convention(c) (UnsafeMutableRawPointer, UnsafeMutableRawPointer) -> Void

    /// Whether the run asks for the allocation checks (the suites are enabled on this).
    public static var isRequested: Bool { getenv("VHOST_USER_ALLOCATION_LOG") != nil }

    public let logPath: String
    private let start: Start
    private let stop: Stop

    /// Finds the preloaded counter and checks it counts: by thread, and at all.
    /// - Throws: `Unavailable` when it is not preloaded or miscounts its controls.
    public init() throws {
        guard let log = getenv("VHOST_USER_ALLOCATION_LOG").map({ String(cString: $0) }) else {
            throw Unavailable(description: "VHOST_USER_ALLOCATION_LOG is not set")
        }
        guard let start = dlsym(nil, "vac_start").map({ unsafeBitCast($0, to: Start.self) }),
              let stop = dlsym(nil, "vac_stop").map({ unsafeBitCast($0, to: Stop.self) }) else {
            throw Unavailable(description: "libVhostAllocationCounter.so is not preloaded (LD_PRELOAD)")
        }
        logPath = log
        self.start = start
        self.stop = stop
        // Positive controls: one allocation here, one on another thread.
        let here = trace {
            let block = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
            block.deallocate()
        }
        let elsewhere = trace {
            var thread = pthread_t()
            pthread_create(&thread, nil, { _ in
                free(malloc(64))
                return nil
            }, nil)
            pthread_join(thread, nil)
        }
        guard here.allocations >= 1, here.frees >= 1, elsewhere.otherThreadAllocations >= 1,
              elsewhere.otherThreadFrees >= 1 else {
            throw Unavailable(description: "the counter does not count: an allocation here gave \(here), "
                + "one on another thread \(elsewhere)")
        }
    }

    /// Counts the allocator calls `body` makes, this thread's apart from everyone else's.
    public func trace(_ body: () throws -> Void) rethrows -> Round {
        start()
        do {
            try body()
        } catch {
            _ = finish()
            throw error
        }
        return finish()
    }

    private func finish() -> Round {
        var measured = (0, 0)
        var others = (0, 0)
        withUnsafeMutableBytes(of: &measured) { mine in
            withUnsafeMutableBytes(of: &others) { theirs in
                // SAFETY: two Ints each, the C struct's two longs, alive for the call.
                stop(mine.baseAddress!, theirs.baseAddress!)
            }
        }
        return Round(allocations: measured.0, frees: measured.1,
                     otherThreadAllocations: others.0, otherThreadFrees: others.1)
    }

    /// One untraced warm-up round (lazy runtime metadata, first-touch caches), then `rounds`
    /// traced ones. Each round calls `prepare` (untraced: e.g. the driver queueing requests),
    /// `measure` (traced) and `settle` (untraced: e.g. the driver taking completions).
    public func rounds(_ rounds: Int = 3, prepare: () throws -> Void, measure: () throws -> Void,
                       settle: () throws -> Void) throws -> [Round] {
        var traced: [Round] = []
        for round in 0...rounds {
            try prepare()
            if round == 0 {
                try measure()
            } else {
                traced.append(try trace(measure))
            }
            try settle()
        }
        return traced
    }

    /// Appends `suite`'s rounds to the log `make test` reads: a line that starts with the suite's
    /// name is how it knows the suite ran.
    public func record(_ suite: String, _ rounds: [Round]) {
        guard let file = fopen(logPath, "a") else { return }
        defer { fclose(file) }
        fputs("\(suite) \(rounds.map(\.description).joined(separator: "; "))\n", file)
    }
}
