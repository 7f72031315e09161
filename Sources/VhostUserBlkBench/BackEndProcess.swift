#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A back end started for one measurement: it runs until `stop()` (SIGTERM, then SIGKILL).
public final class BackEndProcess {
    public let process: Process
    public let socket: String
    private let logPath: String

    /// Starts `arguments[0]` with the rest and waits until `socket` exists.
    /// - Throws: `BenchError.deviceUnsuitable` with the back end's own output when it exits or
    ///   does not create its socket within `timeoutMilliseconds`.
    public init(arguments: [String], socket: String, logPath: String, timeoutMilliseconds: Int = 10_000) throws(BenchError) {
        self.socket = socket
        self.logPath = logPath
        unlink(socket)
        process = Process()
        process.executableURL = URL(fileURLWithPath: arguments.first ?? "")
        process.arguments = Array(arguments.dropFirst())
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        do {
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            process.standardOutput = log
            process.standardError = log
            try process.run()
        } catch {
            throw .deviceUnsuitable("cannot start \(arguments.first ?? "?"): \(error)")
        }
        let deadline = Date().addingTimeInterval(Double(timeoutMilliseconds) / 1000)
        while access(socket, F_OK) != 0 {
            guard process.isRunning, Date() < deadline else {
                stop()
                let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw .deviceUnsuitable("\(arguments.first ?? "?") did not start listening: \(output)")
            }
            usleep(10_000)
        }
    }

    public var pid: Int32 { process.processIdentifier }

    /// Resident memory in bytes (VmRSS), nil once the process is gone.
    public var residentBytes: UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = UInt64(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kilobytes * 1024
    }

    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
        unlink(socket)
    }

    deinit { stop() }
}
