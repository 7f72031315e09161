#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostSystem

/// `ExitOnSignal`: once armed, SIGTERM or SIGINT ends the process at once with the status
/// given, after removing the file (by name relative to a directory's descriptor, or by path).
@Suite struct ExitOnSignalTests {
    /// The file an exit test's process removes: named after this (its parent) process.
    static func socketFile(parent: pid_t, _ signal: Int32) -> String { "/tmp/exit-on-signal-\(parent)-\(signal).sock" }

    @Test func sigtermRemovesTheFileInTheDirectoryAndExits() async throws {
        let file = Self.socketFile(parent: getpid(), SIGTERM)
        #expect(FileManager.default.createFile(atPath: file, contents: nil))
        defer { unlink(file) }
        await #expect(processExitsWith: .exitCode(5)) { Self.armAndRaise(SIGTERM, relative: true) }
        #expect(!FileManager.default.fileExists(atPath: file))
    }

    @Test func sigintRemovesTheFileByPathAndExits() async throws {
        let file = Self.socketFile(parent: getpid(), SIGINT)
        #expect(FileManager.default.createFile(atPath: file, contents: nil))
        defer { unlink(file) }
        await #expect(processExitsWith: .exitCode(5)) { Self.armAndRaise(SIGINT, relative: false) }
        #expect(!FileManager.default.fileExists(atPath: file))
    }

    @Test func aFileKeptIsNotRemoved() async throws {
        let file = Self.socketFile(parent: getpid(), SIGUSR1)
        #expect(FileManager.default.createFile(atPath: file, contents: nil))
        defer { unlink(file) }
        await #expect(processExitsWith: .exitCode(5)) { Self.armAndRaise(SIGTERM, relative: false, fileSignal: SIGUSR1, keep: true) }
        #expect(FileManager.default.fileExists(atPath: file))
    }

    /// In the exit test's process: arms with the parent's file and status 5 (then forgets the
    /// file with `keep`), then raises `signal`; 6 if the handler did not end the process
    /// within 5 s.
    static func armAndRaise(_ signal: Int32, relative: Bool, fileSignal: Int32? = nil, keep: Bool = false) -> Never {
        let file = socketFile(parent: getppid(), fileSignal ?? signal)
        let directory = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { _exit(2) }
        // The test library may start this process with the signals blocked.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, signal)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
        ExitOnSignal.arm(removing: relative ? String(file.dropFirst("/tmp/".count)) : file,
                         in: relative ? directory : nil, message: "test: ending", status: 5)
        if keep { ExitOnSignal.keepFile() }
        _ = raise(signal)
        // ThreadSanitizer delivers it at the next blocking call, not within raise.
        sleep(5)
        _exit(6)
    }
}
