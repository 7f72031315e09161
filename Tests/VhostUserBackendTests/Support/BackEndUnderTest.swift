import VhostUserFrontEnd

/// A running back end a test talks to over its socket: the control plane in this process or
/// the daemon binary in a child process.
protocol BackEndUnderTest: AnyObject {
    var socketPath: String { get }
    var imagePath: String { get }
    /// The process its workers run in: nil for this one.
    var processID: Int32? { get }
    /// A position in the log; `logEntry(containing:after:)` looks only at what comes later.
    var logMark: Int { get }
    /// The first log entry after `mark` whose text contains `text`, waiting for it to appear.
    func logEntry(containing text: String, after mark: Int, waitingUpTo milliseconds: Int) -> String?
    /// Everything logged after `mark`, for failure messages.
    func transcript(after mark: Int) -> String
}

extension BackEndUnderTest {
    func connect(replyTimeoutMilliseconds: Int = 10_000) throws -> FrontEndSession {
        try FrontEndSession.connect(path: socketPath, replyTimeoutMilliseconds: replyTimeoutMilliseconds)
    }
}

extension InProcessBackEnd: BackEndUnderTest {
    var processID: Int32? { nil }
    var logMark: Int { logs.count }

    func logEntry(containing text: String, after mark: Int, waitingUpTo milliseconds: Int) -> String? {
        logs.first(after: mark, waitingUpTo: milliseconds) { $0.description.contains(text) }?.description
    }

    func transcript(after mark: Int) -> String {
        logs.transcript(after: mark)
    }
}
