#if canImport(Glibc)
import Glibc
#endif

/// glibc's malloc tracer (mtrace) driven from a test, to prove a code path allocates nothing.
///
/// The tracer lives in the preloaded debug library, which exports mtrace only under its
/// version (mtrace@GLIBC_2.2.5); a plain dlsym finds libc's stub (a no-op since glibc 2.34), and
/// the Glibc module does not import dlvsym, so that is looked up first. Run with
/// `MALLOC_TRACE=<file> LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0`.
public struct MallocTracer {
    private typealias TraceFunction = @convention(c) () -> Void
    private typealias VersionedLookup = @convention(c) (
        UnsafeMutableRawPointer?, UnsafePointer<CChar>, UnsafePointer<CChar>
    ) -> UnsafeMutableRawPointer?

    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Whether the environment asks for tracing (the suites that need it are enabled on this).
    public static var isRequested: Bool { getenv("MALLOC_TRACE") != nil && getenv("LD_PRELOAD") != nil }

    public let tracePath: String
    private let start: TraceFunction
    private let stop: TraceFunction

    public init() throws {
        guard let path = getenv("MALLOC_TRACE").map({ String(cString: $0) }) else {
            throw Unavailable(description: "MALLOC_TRACE is not set")
        }
        guard let library = dlopen("libc_malloc_debug.so.0", RTLD_NOW | RTLD_NOLOAD),
              let lookup = dlsym(nil, "dlvsym").map({ unsafeBitCast($0, to: VersionedLookup.self) }),
              let start = lookup(library, "mtrace", "GLIBC_2.2.5").map({ unsafeBitCast($0, to: TraceFunction.self) }),
              let stop = lookup(library, "muntrace", "GLIBC_2.2.5").map({ unsafeBitCast($0, to: TraceFunction.self) })
        else {
            throw Unavailable(description: "libc_malloc_debug.so.0 is not preloaded")
        }
        tracePath = path
        self.start = start
        self.stop = stop
    }

    /// Runs one untraced warm-up round (lazy runtime metadata), then `rounds` traced ones. Each
    /// round calls `prepare` (untraced: e.g. the driver queueing requests), `measure` (traced)
    /// and `settle` (untraced: e.g. the driver taking completions).
    /// - Returns: the allocations recorded in each traced round. The tracer also sees the test
    ///   runner's own threads, so a round may catch their allocations; an allocation per request
    ///   shows in every round, so callers require the minimum to be zero.
    public func allocationsPerRound(rounds: Int = 3, prepare: () throws -> Void, measure: () throws -> Void,
                                    settle: () throws -> Void) throws -> [Int] {
        var counts: [Int] = []
        for round in 0...rounds {
            try prepare()
            if round > 0 { start() }
            do {
                try measure()
            } catch {
                if round > 0 { stop() }
                throw error
            }
            if round > 0 {
                stop()
                // mtrace truncates its file when it starts again: count this round now.
                counts.append(Self.allocationLines(in: tracePath))
            }
            try settle()
        }
        return counts
    }

    private static func allocationLines(in path: String) -> Int {
        guard let file = fopen(path, "r") else { return -1 }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer.prefix(count)
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").filter { $0.contains(" + ") }.count
    }
}
