#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A real NBD server on a Unix socket for the tests (nbdkit or qemu-nbd), killed when the value
/// goes away; `kill` and `start` again play a server that crashes and comes back.
public final class NBDServer {
    public let socketPath: String
    public let program: String
    public let arguments: [String]
    private var process: Process?

    public struct Failed: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// nbdkit with `plugin` and its parameters, after `filters`, on `socketPath`. (Not with
    /// --exit-with-parent: its parent-death signal follows the thread that started it, and a
    /// test's thread may end first; deinit kills the server instead.)
    public static func nbdkit(socketPath: String, filters: [String] = [], plugin: String, _ parameters: [String] = [],
                              options: [String] = []) throws -> NBDServer {
        try NBDServer(socketPath: socketPath, program: "/usr/bin/nbdkit",
                      arguments: ["--foreground", "--unix", socketPath] + options
                          + filters.map { "--filter=\($0)" } + [plugin] + parameters)
    }

    /// qemu-nbd serving `file` (persistent: it survives its clients), `shared` clients at once.
    public static func qemuNBD(socketPath: String, file: String, format: String = "raw", shared: Int = 1,
                               options: [String] = []) throws -> NBDServer {
        try NBDServer(socketPath: socketPath, program: "/usr/bin/qemu-nbd",
                      arguments: ["--persistent", "--shared=\(shared)", "--format=\(format)", "--socket=\(socketPath)"]
                          + options + [file])
    }

    init(socketPath: String, program: String, arguments: [String]) throws {
        self.socketPath = socketPath
        self.program = program
        self.arguments = arguments
        try start()
    }

    deinit { kill() }

    /// `nbd+unix:///EXPORT?socket=PATH`.
    public func uri(export: String = "") -> String { "nbd+unix:///\(export)?socket=\(socketPath)" }

    /// Starts the server and waits (at most 10 s) until its socket accepts connections.
    public func start() throws {
        unlink(socketPath)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        self.process = process
        for _ in 0..<400 {
            if accepts() { return }
            guard process.isRunning else { break }
            usleep(25_000)
        }
        kill()
        throw Failed(description: "\(program) \(arguments.joined(separator: " ")) did not start listening")
    }

    /// SIGKILL, as a crash: no goodbye to its clients.
    public func kill() {
        guard let process else { return }
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        self.process = nil
        unlink(socketPath)
    }

    /// SIGSTOP: a server that hangs with its connections open (no answer, no end of stream).
    /// Returns once every thread of it is stopped (`stopProcess`); false if it could not be.
    @discardableResult
    public func pause() -> Bool {
        guard let process, process.isRunning else { return false }
        return stopProcess(process.processIdentifier)
    }

    /// SIGCONT after `pause`.
    public func resume() {
        if let process, process.isRunning { Glibc.kill(process.processIdentifier, SIGCONT) }
    }

    private func accepts() -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in socketPath.utf8.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}
