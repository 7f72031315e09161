#if canImport(Glibc)
import Glibc
#endif
import Logging

/// A log handler that formats every message and drops it: fuzzed runs exercise the logging
/// paths (metadata built from hostile values) without writing anything. With FUZZ_LOG set in
/// the environment (when replaying an input) it prints them instead.
struct DiscardingLogHandler: LogHandler {
    private static let printing = getenv("FUZZ_LOG") != nil

    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        // Render it as a handler would, so description code runs too.
        let text = "\(event.level) \(event.message) \(event.metadata ?? [:]) \(metadata)"
        if Self.printing { print(text) }
    }
}
