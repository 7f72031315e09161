#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostTestSupport

/// A QEMU build the guest tests run against: Debian 12's 7.2 (the host's), Debian 13's 10.0
/// and the newest Debian packages (Debian 13 backports), installed side by side by
/// vm-images/install-qemu.sh, which `make test` runs first.
struct QEMUBuild: Sendable, CustomTestStringConvertible {
    let name: String

    static let all = ["debian12", "debian13", "debian13-backports"].map(QEMUBuild.init(name:))

    /// The builds to test: every one, or those $VHOST_USER_QEMU_BUILDS names (comma-separated;
    /// the sanitizer runs take the newest only). An unknown name is a build that is never
    /// installed, so its tests fail rather than vanish.
    static var matrix: [QEMUBuild] {
        guard let names = ProcessInfo.processInfo.environment["VHOST_USER_QEMU_BUILDS"], !names.isEmpty else { return all }
        return names.split(separator: ",").map { QEMUBuild(name: String($0)) }
    }

    /// The Debian 13 builds carry QEMU's libblkio block driver (virtio-blk-vhost-user).
    static var libblkioMatrix: [QEMUBuild] { matrix.filter { $0.name != "debian12" } }

    var directory: URL { GuestHarness.repositoryRoot.appendingPathComponent("vm-images/out/qemu/\(name)") }

    /// The version the emulator reports ("10.0.13"), nil when the build is not installed.
    var version: String? {
        (try? String(contentsOf: directory.appendingPathComponent("version"), encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Major and minor version, for behaviour that changed between releases.
    var release: (major: Int, minor: Int) {
        let parts = (version ?? "").split(separator: ".").compactMap { Int($0) }
        return (parts.first ?? 0, parts.count > 1 ? parts[1] : 0)
    }

    /// QEMU 8.2 and later send RESET_DEVICE on every reset of the device.
    var sendsResetDevice: Bool { release >= (8, 2) }

    var testDescription: String { "QEMU \(version ?? "not installed") (\(name))" }

    /// The path of one of the build's programs (qemu-img, qemu-io, qemu-storage-daemon...).
    func tool(_ program: String) -> String { directory.appendingPathComponent("bin/\(program)").path }

    /// Fails the test when the build is missing: `make test` installs every build, and a test
    /// that silently ran against fewer would prove less than it says.
    func requireInstalled() throws {
        guard version != nil, FileManager.default.isExecutableFile(atPath: tool("qemu-system-x86_64")) else {
            throw GuestHarness.HarnessError.qemuNotInstalled(name)
        }
    }
}

/// Runs real QEMU guests attached to the real daemon through vm-images/run-guest.sh, the same
/// launcher a user runs. Nothing here is mocked: QEMU 7.2, 10.0 and 11.1 (TCG), a Debian
/// kernel, busybox.
enum GuestHarness {
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var launcher: String { repositoryRoot.appendingPathComponent("vm-images/run-guest.sh").path }

    /// The daemon under test: $VHOST_USER_BLK_BIN, which `make test` sets for each build.
    /// The daemon's default cache mode (no option, as a user starts it) and O_DIRECT: the
    /// guest tests that move data run with both.
    static let cacheModes = ["default", "none"]

    /// The launcher's arguments for `cache` (none for the default).
    static func cacheArguments(_ cache: String) -> [String] {
        cache == "default" ? [] : ["--daemon-arg", "--cache=\(cache)"]
    }

    static var daemon: String {
        get throws { try TestBinary.daemon.path }
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
        /// - Parameter base: a directory on another file system (O_DIRECT needs one tmpfs may
        ///   not be); the system's temporary directory by default.
        init(under base: String? = nil) throws {
            let parent = base.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
            url = parent.appendingPathComponent("vublk-e2e-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(at: url) }
        func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    }

    /// Runs `run-guest.sh --qemu qemu.name` with `arguments` and waits for it.
    static func run(_ qemu: QEMUBuild, _ arguments: [String], timeout: Int = 240) throws -> Result {
        try qemu.requireInstalled()
        let finished = try runProgram(launcher, ["--qemu", qemu.name] + arguments + ["--timeout", "\(timeout)"])
        return Result(exitCode: finished.status, output: finished.output)
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
        process.executableURL = URL(fileURLWithPath: try daemon)
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


    enum HarnessError: Error, CustomStringConvertible {
        case daemonDidNotStart(log: String)
        case qemuNotInstalled(String)

        var description: String {
            switch self {
            case .daemonDidNotStart(let log): "the daemon did not start: \(log)"
            case .qemuNotInstalled(let name): "QEMU build \(name) is not installed: run vm-images/install-qemu.sh \(name)"
            }
        }
    }
}
