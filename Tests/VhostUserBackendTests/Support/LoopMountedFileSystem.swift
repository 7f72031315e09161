#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VhostTestSupport
import VhostSystem

/// A small ext4 file system in an image file, loop-mounted in a temporary directory (the test
/// machines run as root), so a test can fill it and see what a full disk does, or give it
/// 4 KiB sectors. No blocks are
/// reserved for root (`mkfs.ext4 -m 0`): the daemon drops its capabilities, and the test's own
/// filler should leave exactly what it says.
final class LoopMountedFileSystem {
    let directory: TemporaryDirectory
    let mountPoint: String
    private let fillerPath: String
    private let loopDevice: String

    /// - Parameter sectorSize: the loop device's logical sector size: 4096 makes a disk whose
    ///   O_DIRECT alignment is 4 KiB (a 4Kn disk), as `losetup --sector-size` does.
    init(megabytes: Int, sectorSize: Int = 512) throws {
        directory = try TemporaryDirectory()
        let image = directory.path("fs.img")
        mountPoint = directory.path("mnt")
        fillerPath = mountPoint + "/filler"
        try makeSparseFile(at: image, size: megabytes << 20)
        loopDevice = try Self.run("/sbin/losetup", ["--find", "--show", "--sector-size", "\(sectorSize)", image])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            try Self.run("/sbin/mkfs.ext4", ["-q", "-F", "-m", "0", loopDevice])
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            try Self.run("/bin/mount", [loopDevice, mountPoint])
        } catch {
            _ = try? Self.run("/sbin/losetup", ["--detach", loopDevice])
            throw error
        }
    }

    deinit {
        // Before the directory goes (stored properties are released after this body). Still
        // busy (a daemon not gone yet): detached lazily, so no mount outlives the test.
        if (try? Self.run("/bin/umount", [mountPoint])) == nil { _ = try? Self.run("/bin/umount", ["-l", mountPoint]) }
        _ = try? Self.run("/sbin/losetup", ["--detach", loopDevice])
    }

    /// The bytes an unprivileged writer may still allocate.
    var availableBytes: Int {
        var info = statvfs()
        guard statvfs(mountPoint, &info) == 0 else { return -1 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// Allocates a filler file so that about `bytes` stay available.
    func fill(leaving bytes: Int) throws {
        let size = availableBytes - bytes
        guard size > 0 else { return }
        let filler = try OwnedFileDescriptor.open(fillerPath, flags: O_RDWR | O_CREAT | O_TRUNC)
        let result = posix_fallocate(filler.rawValue, 0, off_t(size))
        guard result == 0 else { throw SystemError(call: "posix_fallocate(\(fillerPath))", errno: result) }
    }

    /// Frees what `fill` took.
    func removeFiller() throws {
        guard unlink(fillerPath) == 0 else { throw SystemError(call: "unlink(\(fillerPath))", errno: errno) }
    }

    /// Runs `program`; returns what it printed, or throws with it when it fails.
    @discardableResult
    private static func run(_ program: String, _ arguments: [String]) throws -> String {
        let finished = try runProgram(program, arguments)
        guard finished.status == 0 else {
            throw LoopMountError.failed("\(program) \(arguments.joined(separator: " ")) exited with \(finished.status): \(finished.output)")
        }
        return finished.output
    }
}

enum LoopMountError: Error, CustomStringConvertible {
    case failed(String)

    var description: String {
        switch self {
        case .failed(let what): what
        }
    }
}
