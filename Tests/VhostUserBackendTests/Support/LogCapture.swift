#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import VhostSystem

/// Every log record a back end under test emitted, so tests can assert the specific error.
final class LogStore: Sendable {
    struct Entry: Sendable, CustomStringConvertible {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]

        var description: String {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(level) \(message) \(fields)"
        }
    }

    private let entries = Locked<[Entry]>([])

    func append(_ entry: Entry) {
        entries.withLock { $0.append(entry) }
    }

    var all: [Entry] { entries.withLock { $0 } }

    /// How many entries there are now; pass it to `first(after:...)` to look only at what
    /// happens later.
    var count: Int { entries.withLock { $0.count } }

    /// The first entry after position `start` that satisfies `matches`, waiting up to
    /// `milliseconds` for one to be logged (workers log from their own threads).
    func first(after start: Int = 0, waitingUpTo milliseconds: Int = 5_000,
               where matches: (Entry) -> Bool) -> Entry? {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while true {
            let found = entries.withLock { all in all.dropFirst(start).first(where: matches) }
            if let found { return found }
            if ContinuousClock.now >= deadline { return nil }
            usleepMilliseconds(5)
        }
    }

    /// The text of every entry after `start`, one per line, for failure messages.
    func transcript(after start: Int = 0) -> String {
        entries.withLock { $0.dropFirst(start).map(\.description).joined(separator: "\n") }
    }
}

/// A swift-log handler that appends to a `LogStore`, keeping logger and record metadata.
struct CapturingLogHandler: LogHandler {
    let store: LogStore
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged: [String: String] = [:]
        for (key, value) in metadata { merged[key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { merged[key] = "\(value)" }
        store.append(LogStore.Entry(level: event.level, message: event.message.description, metadata: merged))
    }
}

func usleepMilliseconds(_ milliseconds: Int) {
    usleep(UInt32(milliseconds * 1000))
}
