#if canImport(Glibc)
import Glibc
#endif

/// Ends the process from the signal handler on SIGINT or SIGTERM: what a daemon arms once its
/// orderly shutdown (which waits for requests in flight) has begun, so that a second signal
/// does not wait too. The handler only makes async-signal-safe calls: it removes a file
/// (relative to a directory descriptor, which also works inside the sandbox), writes a line to
/// standard error and calls `_exit`.
public enum ExitOnSignal {
    /// What the handler reads: written before it is installed, never freed.
    struct Plan {
        var directory: Int32
        var fileName: UnsafeMutablePointer<CChar>?
        var message: UnsafeMutablePointer<CChar>?
        var messageLength: Int
        var status: Int32
    }

    nonisolated(unsafe) static var plan: UnsafeMutablePointer<Plan>?

    /// Installs the handler for SIGINT and SIGTERM (again after GLib's signal sources put the
    /// default back), with this call's file, message and status.
    /// - Parameters:
    ///   - fileName: a file to remove first (the listening socket's), relative to `directory`.
    ///   - message: the line written to standard error (a newline is added).
    ///   - status: the exit status.
    public static func arm(removing fileName: String?, in directory: Int32?, message: String, status: Int32) {
        let line = message + "\n"
        let prepared = plan ?? .allocate(capacity: 1)
        // Neither the plan nor its strings are ever freed: a handler may be reading them.
        prepared.initialize(to: Plan(directory: directory ?? AT_FDCWD, fileName: fileName.flatMap { strdup($0) },
                                     message: strdup(line), messageLength: line.utf8.count, status: status))
        plan = prepared
        var action = sigaction()
        action.__sigaction_handler.sa_handler = exitNow
        sigemptyset(&action.sa_mask)
        for signal in [SIGINT, SIGTERM] { sigaction(signal, &action, nil) }
    }

    /// The handler no longer removes the file (the caller removed it: a file of that name may
    /// soon be another process's).
    public static func keepFile() {
        plan?.pointee.fileName = nil
    }
}

private let exitNow: @convention(c) (Int32) -> Void = { _ in
    guard let plan = ExitOnSignal.plan else { _exit(1) }
    if let fileName = plan.pointee.fileName { unlinkat(plan.pointee.directory, fileName, 0) }
    if let message = plan.pointee.message { _ = write(STDERR_FILENO, message, plan.pointee.messageLength) }
    _exit(plan.pointee.status)
}
