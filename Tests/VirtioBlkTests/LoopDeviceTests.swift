#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import VirtioBlk

/// BlockImage on a real block device: a loop device over a temporary file (`losetup -f --show`,
/// which needs root and /dev/loop-control; the suite is disabled where they are missing).
///
/// It checks that the block-device path is taken and works, with evidence the regular-file path
/// could not produce: a block device's `st_size` is 0, so the right size can only come from
/// BLKGETSIZE64; BLKDISCARD shows up in the device's discard counters
/// (/sys/block/loopN/stat, fields 12–15), which hole punching does not touch; BLKZEROOUT sends
/// write-zeroes to the device before it returns, so the device's written-sector counter grows at
/// once, where the fallback's pwrite would only dirty the page cache.
@Suite("BlockImage on a loop device", .enabled(if: LoopDevice.isAvailable))
struct LoopDeviceTests {
    static let size = 4 << 20
    static let fill: UInt8 = 0xAB

    @Test func sizeDiscardAndWriteZeroesUseTheBlockDevicePath() throws {
        let loop = try LoopDevice(size: Self.size, fill: Self.fill)
        let image = try BlockImage(path: loop.devicePath, readOnly: false)
        let fd = image.descriptor.rawValue

        #expect(image.isBlockDevice)
        var status = stat()
        #expect(fstat(fd, &status) == 0)
        #expect(status.st_mode & S_IFMT == S_IFBLK)
        #expect(status.st_size == 0)
        #expect(image.size == UInt64(Self.size))
        #expect(image.sectorCount == UInt64(Self.size / 512))

        let beforeDiscard = try loop.statistics()
        #expect(image.discard(offset: 64 << 10, length: 64 << 10) == 0)
        let afterDiscard = try loop.statistics()
        #expect(afterDiscard.discardedSectors - beforeDiscard.discardedSectors == 128)
        #expect(afterDiscard.discardRequests > beforeDiscard.discardRequests)

        let zeroes = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { zeroes.deallocate() }
        zeroes.initializeMemory(as: UInt8.self, repeating: 0)
        #expect(image.writeZeroes(offset: 256 << 10, length: 64 << 10, unmap: false, zeroes: UnsafeRawBufferPointer(zeroes)) == 0)
        #expect(image.writeZeroes(offset: 512 << 10, length: 4096, unmap: true, zeroes: UnsafeRawBufferPointer(zeroes)) == 0)
        let afterZeroes = try loop.statistics()
        #expect(afterZeroes.writtenSectors - afterDiscard.writtenSectors >= 136)
        #expect(afterZeroes.discardedSectors == afterDiscard.discardedSectors)

        // Read back through the device: the three ranges are zero, everything else untouched.
        var back = [UInt8](repeating: 0, count: Self.size)
        let read = back.withUnsafeMutableBytes { pread(fd, $0.baseAddress, Self.size, 0) }
        #expect(read == Self.size)
        let zeroed = [(64 << 10)..<(128 << 10), (256 << 10)..<(320 << 10), (512 << 10)..<((512 << 10) + 4096)]
        var expected = [UInt8](repeating: Self.fill, count: Self.size)
        for range in zeroed { expected.replaceSubrange(range, with: repeatElement(0, count: range.count)) }
        let matches = BlockFixture.sameBytes(back, expected)
        #expect(matches)
        #expect(image.flush() == 0)
    }

    @Test func readOnlyBlockDeviceRefusesWrites() throws {
        let loop = try LoopDevice(size: Self.size, fill: Self.fill)
        let image = try BlockImage(path: loop.devicePath, readOnly: true)
        #expect(image.isBlockDevice)
        #expect(image.size == UInt64(Self.size))
        // Opened O_RDONLY: even a direct discard fails, and nothing changes.
        #expect(image.discard(offset: 0, length: 4096) != 0)
        var back = [UInt8](repeating: 0, count: 4096)
        #expect(back.withUnsafeMutableBytes { pread(image.descriptor.rawValue, $0.baseAddress, 4096, 0) } == 4096)
        let unchanged = back.allSatisfy { $0 == Self.fill }
        #expect(unchanged)
    }
}

/// A loop device over a temporary file filled with one byte value, detached and deleted in
/// `deinit`.
final class LoopDevice {
    static let losetup: String? = ["/usr/sbin/losetup", "/sbin/losetup"].first { (path: String) in access(path, X_OK) == 0 }

    /// Root, /dev/loop-control and losetup: what `losetup -f --show` needs.
    static var isAvailable: Bool {
        geteuid() == 0 && access("/dev/loop-control", F_OK) == 0 && losetup != nil
    }

    let backingPath: String
    let devicePath: String

    init(size: Int, fill: UInt8) throws {
        var template = Array("/tmp/vublk-loop-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        backingPath = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let bytes = [UInt8](repeating: fill, count: size)
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, size, 0) }
        fsync(fd)
        close(fd)
        guard written == size, let attached = Self.run(["-f", "--show", backingPath]), attached.hasPrefix("/dev/loop") else {
            unlink(backingPath)
            throw LoopDeviceError(message: "losetup -f --show \(backingPath) failed")
        }
        devicePath = attached
    }

    deinit {
        _ = Self.run(["-d", devicePath])
        unlink(backingPath)
    }

    /// The counters of /sys/block/loopN/stat (Documentation/block/stat.rst).
    struct Statistics {
        let writtenSectors: Int
        let discardRequests: Int
        let discardedSectors: Int
    }

    func statistics() throws -> Statistics {
        let name = devicePath.split(separator: "/").last.map(String.init) ?? ""
        let text = try String(contentsOfFile: "/sys/block/\(name)/stat", encoding: .utf8)
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int($0) }
        try #require(fields.count >= 15, "discard fields missing in /sys/block/\(name)/stat")
        return Statistics(writtenSectors: fields[6], discardRequests: fields[11], discardedSectors: fields[13])
    }

    /// Runs losetup and returns its trimmed standard output, or nil if it failed.
    private static func run(_ arguments: [String]) -> String? {
        guard let losetup else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: losetup)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return nil
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct LoopDeviceError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
