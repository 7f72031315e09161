#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// Runs real QEMU guests attached to the real daemon through vm-images/run-guest.sh, the same
/// launcher a user runs. Nothing here is mocked: QEMU 7.2 (TCG), a Debian kernel, busybox.
enum GuestHarness {
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var launcher: String { repositoryRoot.appendingPathComponent("vm-images/run-guest.sh").path }

    /// The daemon under test: $VHOST_USER_BLK_BIN (set by `make test`) or the debug build.
    static var daemon: String {
        if let path = ProcessInfo.processInfo.environment["VHOST_USER_BLK_BIN"], !path.isEmpty { return path }
        return repositoryRoot.appendingPathComponent(".build/debug/vhost-user-blk").path
    }

    struct Result {
        var exitCode: Int32
        var output: String
        /// Lines the guest printed as `GUEST-NOTE: <text>`, in order.
        var notes: [String] {
            output.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).compactMap { line in
                guard let range = line.range(of: "GUEST-NOTE: ") else { return nil }
                return String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
            }
        }
    }

    /// A scratch directory removed at the end of the test.
    final class Scratch {
        let url: URL
        init() throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("vublk-e2e-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(at: url) }
        func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    }

    /// Runs `run-guest.sh` with `arguments` and waits for it.
    static func run(_ arguments: [String], timeout: Int = 240) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launcher)
        process.arguments = arguments + ["--timeout", "\(timeout)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(exitCode: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// Creates a sparse image of `size` bytes.
    static func makeImage(at path: String, size: Int) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
    }

    /// Deterministic pseudo-random bytes (xorshift), so a failure can be reproduced.
    static func pattern(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    /// nil when `actual` equals `expected`, else where they first differ and by how much.
    /// Compare large buffers with this, not with `#expect(a == b)`: on a mismatch Swift
    /// Testing diffs the two arrays (Myers), which for a MiB of differing bytes runs for hours.
    static func difference(_ actual: [UInt8], _ expected: [UInt8]) -> String? {
        guard actual.count == expected.count else { return "\(actual.count) bytes, expected \(expected.count)" }
        guard let first = actual.indices.first(where: { actual[$0] != expected[$0] }) else { return nil }
        let differing = zip(actual, expected).reduce(0) { $0 + ($1.0 != $1.1 ? 1 : 0) }
        return "\(differing) of \(actual.count) bytes differ, first at \(first): \(actual[first]) instead of \(expected[first])"
    }

    /// md5sum's hex digest of `bytes`, as the guest's busybox prints it (coreutils on the host).
    static func md5(_ bytes: [UInt8]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/md5sum")
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Reads `count` bytes of the image at `offset` from the host.
    static func read(_ path: String, offset: Int, count: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        return [UInt8](try handle.read(upToCount: count) ?? Data())
    }

    /// Starts the daemon on its own (for tests where QEMU comes and goes).
    static func startDaemon(socket: String, image: String, extra: [String] = [], log: String) throws -> Process {
        try startDaemon(socket: socket, arguments: ["--blk-file=\(image)"] + extra, log: log)
    }

    /// Starts the daemon with `--socket-path=socket` and `arguments`, once its socket exists.
    static func startDaemon(socket: String, arguments: [String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: daemon)
        process.arguments = ["--socket-path=\(socket)"] + arguments
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = handle
        process.standardOutput = handle
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: socket) {
            guard process.isRunning, Date() < deadline else {
                throw HarnessError.daemonDidNotStart(log: (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
            }
            usleep(20_000)
        }
        return process
    }

    enum HarnessError: Error {
        case daemonDidNotStart(log: String)
    }
}
