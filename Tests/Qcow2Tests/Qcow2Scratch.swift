import Foundation
import Logging
import Qcow2
import VhostSystem
import VhostTestSupport

/// A directory of images made by qemu-img for one test, removed afterwards, and the helpers
/// that compare our view of an image with qemu-img's.
final class Qcow2Scratch {
    let directory: String
    static let logger = Logger(label: "qcow2-tests")

    init(under base: String = NSTemporaryDirectory()) throws {
        var template = Array((base.hasSuffix("/") ? base : base + "/").appending("qcow2-test-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw ScratchError(message: "mkdtemp failed under \(base)")
        }
        directory = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func path(_ name: String) -> String { directory + "/" + name }

    struct ScratchError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Runs qemu-img; a failure throws with its output.
    @discardableResult
    func qemuImg(_ arguments: [String]) throws -> String {
        let (status, output) = try runProgram("/usr/bin/qemu-img", arguments)
        guard status == 0 else { throw ScratchError(message: "qemu-img \(arguments.joined(separator: " ")): \(output)") }
        return output
    }

    /// Runs qemu-io commands on an image (qemu-io's own writes: the reference).
    func qemuIo(_ image: String, format: String = "qcow2", _ commands: [String]) throws {
        let arguments = ["-f", format] + commands.flatMap { ["-c", $0] } + [image]
        let (status, output) = try runProgram("/usr/bin/qemu-io", arguments)
        guard status == 0, !output.contains("error"), !output.contains("failed") else {
            throw ScratchError(message: "qemu-io \(arguments.joined(separator: " ")): \(output)")
        }
    }

    /// The disk's contents as qemu-img reads them.
    func contents(of image: String) throws -> [UInt8] {
        let raw = path("contents-\(UUID().uuidString).raw")
        defer { try? FileManager.default.removeItem(atPath: raw) }
        try qemuImg(["convert", "-O", "raw", image, raw])
        return Array(try Data(contentsOf: URL(fileURLWithPath: raw)))
    }

    /// `qemu-img check` on an image: (exit status, output).
    func check(_ image: String) throws -> (status: Int32, output: String) {
        try runProgram("/usr/bin/qemu-img", ["check", image])
    }

    func open(_ image: String, readOnly: Bool, direct: Bool = false, l2CacheBytes: Int? = nil) throws -> Qcow2Disk {
        let flags = (readOnly ? O_RDONLY : O_RDWR) | (direct ? OwnedFileDescriptor.directIOFlag : 0)
        let descriptor = try OwnedFileDescriptor.open(image, flags: flags)
        let alignment: (memory: Int, offset: Int)? = direct ? ((try? descriptor.directIOAlignment()) ?? nil) ?? (4096, 4096) : nil
        return try Qcow2Disk(descriptor: descriptor, path: image, readOnly: readOnly, directAlignment: alignment,
                             backingOpenFlags: direct ? OwnedFileDescriptor.directIOFlag : 0, l2CacheBytes: l2CacheBytes,
                             logger: Self.logger)
    }
}

extension Qcow2Disk {
    /// The whole disk read through `read`, 1 MiB at a time.
    func readAll(chunk: Int = 1 << 20) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0xee, count: Int(virtualSize))
        var offset = 0
        while offset < bytes.count {
            let length = min(chunk, bytes.count - offset)
            let result = bytes.withUnsafeMutableBytes { raw -> Int32 in
                var vector = iovec(iov_base: raw.baseAddress.map { $0 + offset }, iov_len: length)
                return read(&vector, count: 1, offset: UInt64(offset), length: length)
            }
            guard result == 0 else { throw Qcow2Scratch.ScratchError(message: "read at \(offset) failed: errno \(result)") }
            offset += length
        }
        return bytes
    }

    /// Writes `bytes` at `offset`, split over iovecs of `pieces` sizes when given.
    func write(_ bytes: [UInt8], at offset: UInt64, splitAt cut: Int? = nil) -> Int32 {
        var copy = bytes
        return copy.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return EINVAL }
            if let cut, cut > 0, cut < bytes.count {
                var vectors = [iovec(iov_base: base, iov_len: cut), iovec(iov_base: base + cut, iov_len: bytes.count - cut)]
                return vectors.withUnsafeMutableBufferPointer { buffer in
                    guard let first = buffer.baseAddress else { return EINVAL }
                    return write(first, count: 2, offset: offset, length: bytes.count)
                }
            }
            var vector = iovec(iov_base: base, iov_len: bytes.count)
            return write(&vector, count: 1, offset: offset, length: bytes.count)
        }
    }
}

/// A repeatable pseudo-random sequence (VhostTestSupport's SplitMix64) with the helpers these
/// tests use.
struct TestRandom {
    private var generator: SplitMix64
    init(state: UInt64) { generator = SplitMix64(seed: state) }
    mutating func next() -> UInt64 { generator.next() }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}
