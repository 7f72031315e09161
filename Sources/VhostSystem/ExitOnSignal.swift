#if canImport(Glibc)
import Glibc
#endif

/// Ends the process from the signal handler on SIGINT or SIGTERM: what a daemon arms once its
/// orderly shutdown (which waits for requests in flight) has begun, so that a second signal
/// does not wait too. The handler only makes async-signal-safe calls: it removes a file
/// (relative to a directory descriptor, which also works inside the sandbox), writes a line to
/// standard error and calls `_exit`.
public enum ExitOnSignal {
    /// What the handler reads, in storage allocated once and never freed (a handler may be
    /// reading it when the next `arm` rewrites it).
    struct Plan {
        var directory: Int32 = AT_FDCWD
        var removesFile = false
        var status: Int32 = 1
        var messageLength = 0
        /// NUL-terminated.
        var fileName: UnsafeMutablePointer<CChar>
        var message: UnsafeMutablePointer<CChar>
    }

    /// The longest file name (a path, PATH_MAX with its NUL) and message kept.
    static let fileNameCapacity = 4096
    static let messageCapacity = 512

    nonisolated(unsafe) static var plan: UnsafeMutablePointer<Plan>?

    /// Installs the handler for SIGINT and SIGTERM (again after GLib's signal sources put the
    /// default back), with this call's file, message and status.
    /// - Parameters:
    ///   - fileName: a file to remove first (the listening socket's), relative to `directory`;
    ///     one longer than a path can be is not removed.
    ///   - message: the line written to standard error (a newline is added; cut to 511 bytes).
    ///   - status: the exit status.
    public static func arm(removing fileName: String?, in directory: Int32?, message: String, status: Int32) {
        let prepared = plan ?? {
            let new = UnsafeMutablePointer<Plan>.allocate(capacity: 1)
            new.initialize(to: Plan(fileName: .allocate(capacity: fileNameCapacity), message: .allocate(capacity: messageCapacity)))
            plan = new
            return new
        }()
        let name = Array((fileName ?? "").utf8)
        prepared.pointee.removesFile = false
        if fileName != nil, name.count < fileNameCapacity {
            for (index, byte) in name.enumerated() { prepared.pointee.fileName[index] = CChar(bitPattern: byte) }
            prepared.pointee.fileName[name.count] = 0
            prepared.pointee.directory = directory ?? AT_FDCWD
            prepared.pointee.removesFile = true
        }
        let line = Array(message.utf8.prefix(messageCapacity - 1)) + [UInt8(ascii: "\n")]
        for (index, byte) in line.enumerated() { prepared.pointee.message[index] = CChar(bitPattern: byte) }
        prepared.pointee.messageLength = line.count
        prepared.pointee.status = status
        var action = sigaction()
        action.__sigaction_handler.sa_handler = exitNow
        sigemptyset(&action.sa_mask)
        for signal in [SIGINT, SIGTERM] { sigaction(signal, &action, nil) }
    }

    /// The handler no longer removes the file (the caller removed it: a file of that name may
    /// soon be another process's).
    public static func keepFile() {
        plan?.pointee.removesFile = false
    }
}

private let exitNow: @convention(c) (Int32) -> Void = { _ in
    guard let plan = ExitOnSignal.plan else { _exit(1) }
    if plan.pointee.removesFile { unlinkat(plan.pointee.directory, plan.pointee.fileName, 0) }
    _ = write(STDERR_FILENO, plan.pointee.message, plan.pointee.messageLength)
    _exit(plan.pointee.status)
}
