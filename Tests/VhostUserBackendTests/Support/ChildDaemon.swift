#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VhostTestSupport
import VhostUserFrontEnd

/// The real `vhost-user-blk` binary in a child process, on a socket and image in a temporary
/// directory, its stderr (the log) in a file. Because the process holds nothing but the
/// daemon's own descriptors, `/proc/<pid>/fd` counts them exactly.
final class ChildDaemon: BackEndUnderTest {

    let directory: TemporaryDirectory
    let socketPath: String
    let imagePath: String
    let logPath: String
    let process: Process

    var pid: Int32 { process.processIdentifier }
    var processID: Int32? { pid }

    /// Execs the daemon under a seccomp filter that answers io_uring_setup with ENOSYS, as a
    /// kernel without io_uring or a container runtime's filter does (libseccomp's Python
    /// binding, python3-seccomp, installed by `make setup`).
    static let refusingIOUring = """
        import errno, os, sys, seccomp
        rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "io_uring_setup")
        rules.load()
        os.execv(sys.argv[1], sys.argv[1:])
        """

    /// - Parameters:
    ///   - image: an image file to serve instead of a new sparse one of `imageSize` bytes.
    ///   - withoutIOUring: start it under `refusingIOUring`.
    init(imageSize: Int = InProcessBackEnd.imageSize, image: String? = nil, extraArguments: [String] = [],
         withoutIOUring: Bool = false) throws {
        directory = try TemporaryDirectory()
        socketPath = directory.path("vhost-user-blk.sock")
        imagePath = image ?? directory.path("disk.img")
        logPath = directory.path("daemon.log")
        if image == nil { try makeSparseFile(at: imagePath, size: imageSize) }
        process = Process()
        let daemon = try TestBinary.daemon.path
        let arguments = [
            "--socket-path=\(socketPath)", "--blk-file=\(imagePath)",
            "--num-queues=\(InProcessBackEnd.queueCount)", "--queue-size=\(InProcessBackEnd.queueSize)",
            "--serial=\(InProcessBackEnd.serial)", "--log-level=info",
        ] + extraArguments
        if withoutIOUring {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", Self.refusingIOUring, daemon] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: daemon)
            process.arguments = arguments
        }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardError = log
        process.standardOutput = log
        try process.run()
        let deadline = ContinuousClock.now + .seconds(20)
        while !FileManager.default.fileExists(atPath: socketPath) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                throw ChildDaemonError.didNotStart(log: transcript(after: 0))
            }
            usleepMilliseconds(10)
        }
    }

    deinit {
        stop()
    }

    /// SIGTERM, then SIGKILL if it has not exited within `milliseconds`.
    /// - Returns: whether it exited on SIGTERM.
    @discardableResult
    func stop(milliseconds: Int = 10_000) -> Bool {
        guard process.isRunning else { return true }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while process.isRunning && ContinuousClock.now < deadline { usleepMilliseconds(10) }
        guard process.isRunning else { return true }
        kill(pid, SIGKILL)
        process.waitUntilExit()
        return false
    }

    /// The daemon's open descriptors.
    var descriptorCount: Int { DescriptorCensus.descriptors(process: "\(pid)").count }

    /// The daemon's mappings of memfds (guest RAM).
    var memfdMappingCount: Int {
        guard let maps = readWholeFile("/proc/\(pid)/maps") else { return -1 }
        return maps.split(separator: "\n").filter { $0.contains("/memfd:") }.count
    }

    /// The daemon's threads.
    var threadCount: Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count) ?? -1
    }

    /// What the daemon holds when no front end is attached.
    struct Footprint: Equatable, CustomStringConvertible {
        var descriptors: Int
        var memfdMappings: Int
        var threads: Int
        var description: String { "\(descriptors) fds, \(memfdMappings) memfd mappings, \(threads) threads" }
    }

    var footprint: Footprint {
        Footprint(descriptors: descriptorCount, memfdMappings: memfdMappingCount, threads: threadCount)
    }

    /// Waits until the daemon holds no connection (only its listening socket is bound to the
    /// path) and no queue worker runs, then, if `expected` is given, until its footprint equals
    /// it (up to `milliseconds`).
    /// - Returns: the footprint, or nil if the daemon never became idle.
    func waitIdle(matching expected: Footprint? = nil, milliseconds: Int = 5_000) -> Footprint? {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while true {
            let idle = DescriptorCensus.openSockets(boundTo: socketPath, process: "\(pid)") == 1
                && DescriptorCensus.queueWorkerThreads(process: "\(pid)").isEmpty
            let now = footprint
            if idle && (expected == nil || expected == now) { return now }
            if ContinuousClock.now >= deadline { return idle ? now : nil }
            usleepMilliseconds(10)
        }
    }

    /// A line of /proc/<pid>/status, e.g. "CapEff".
    func status(_ field: String) -> String? {
        guard let text = readWholeFile("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("\(field):") {
            return line.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    // MARK: BackEndUnderTest

    private var logText: String { readWholeFile(logPath) ?? "" }

    var logMark: Int { logText.utf8.count }

    func logEntry(containing text: String, after mark: Int, waitingUpTo milliseconds: Int) -> String? {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while true {
            let lines = String(decoding: logText.utf8.dropFirst(mark), as: UTF8.self).split(separator: "\n")
            if let line = lines.first(where: { $0.contains(text) }) { return String(line) }
            if ContinuousClock.now >= deadline { return nil }
            usleepMilliseconds(10)
        }
    }

    func transcript(after mark: Int) -> String {
        String(decoding: logText.utf8.dropFirst(mark), as: UTF8.self)
    }
}

enum ChildDaemonError: Error, CustomStringConvertible {
    case didNotStart(log: String)

    var description: String {
        switch self {
        case .didNotStart(let log): "the daemon did not start:\n\(log)"
        }
    }
}
