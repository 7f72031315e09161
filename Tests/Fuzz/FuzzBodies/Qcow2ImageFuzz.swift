#if canImport(Glibc)
import Glibc
#endif
import Logging
import Qcow2
import VhostSystem

/// The qcow2 parser and tables on a hostile image file: the input's first 8 bytes seed the
/// operations, the rest is the image. Opened read-only, every read (the disk's start, then
/// seeded offsets) completes with data or an errno; opened read-write on a copy, a write inside one
/// cluster that succeeds reads back as written, whatever the metadata around it says. Reads and
/// writes go, as the seed says, through the synchronous path or through a `Qcow2Request` whose
/// transfers are carried out at once in reverse order. Nothing may trap.
public enum Qcow2ImageFuzz {
    static let logger = Logger(label: "fuzz-qcow2") { _ in DiscardingLogHandler() }

    public static func run(_ bytes: UnsafeRawBufferPointer) {
        var input = FuzzInput(bytes)
        var seed = input.uint64()
        let image = input.bytes(upTo: 1 << 22)
        guard let readOnly = file(with: image), let disk = try? open(readOnly, readOnly: true) else { return }
        var buffer = [UInt8](repeating: 0, count: 65536)
        for index in 0..<8 where UInt64(index) * 65536 < disk.virtualSize {
            _ = read(disk, into: &buffer, offset: UInt64(index) * 65536, length: Int(min(65536, disk.virtualSize - UInt64(index) * 65536)),
                     viaEngine: index & 1 == 0)
        }
        for _ in 0..<8 {
            let (offset, length) = place(&seed, in: disk.virtualSize)
            _ = read(disk, into: &buffer, offset: offset, length: length, viaEngine: next(&seed) & 1 == 0)
        }
        guard let writable = file(with: image), let target = try? open(writable, readOnly: false) else { return }
        for step in 0..<8 {
            let (offset, length) = place(&seed, in: target.virtualSize)
            let pattern = [UInt8](repeating: UInt8(truncatingIfNeeded: step &+ 1), count: length)
            switch next(&seed) % 4 {
            case 0:
                _ = target.discard(offset: offset, length: UInt64(length))
            case 1:
                guard target.writeZeroes(offset: offset, length: UInt64(length), unmap: next(&seed) & 1 == 0) == 0 else { continue }
                guard read(target, into: &buffer, offset: offset, length: length, viaEngine: next(&seed) & 1 == 0) == 0 else { continue }
                if !buffer[..<length].allSatisfy({ $0 == 0 }) { fatalError("a zeroed range reads back non-zero") }
            case 2:
                // Across clusters: a hostile image may map two guest clusters to one host cluster
                // (qemu-img check calls that corrupt), so only "no trap" is promised here.
                _ = write(target, pattern, offset: offset, viaEngine: next(&seed) & 1 == 0)
            default:
                // Inside one cluster the mapping written is the mapping read.
                let cluster = UInt64(target.clusterSize)
                let inside = Int(min(UInt64(length), cluster - offset % cluster))
                guard write(target, Array(pattern.prefix(inside)), offset: offset, viaEngine: next(&seed) & 1 == 0) == 0 else { continue }
                // A failed read is allowed (metadata found corrupt since); wrong data is not.
                guard read(target, into: &buffer, offset: offset, length: inside, viaEngine: next(&seed) & 1 == 0) == 0 else { continue }
                if buffer[..<inside] != pattern[..<inside] { fatalError("a written range reads back different bytes") }
            }
        }
    }

    private static func next(_ seed: inout UInt64) -> UInt64 {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        return seed >> 17
    }

    /// A sector-aligned range of 512 B to 64 KiB inside the disk (near its start or its end).
    private static func place(_ seed: inout UInt64, in size: UInt64) -> (UInt64, Int) {
        let sectors = size / 512
        guard sectors > 0 else { return (0, 0) }
        let length = Int(min(UInt64(1 + next(&seed) % 128), sectors))
        let room = sectors - UInt64(length)
        let choice = next(&seed)
        let start = choice & 1 == 0 ? (next(&seed) % min(room + 1, 4096)) : room - (next(&seed) % min(room + 1, 4096))
        return (start * 512, length * 512)
    }

    private static func file(with bytes: UnsafeRawBufferPointer) -> OwnedFileDescriptor? {
        guard let descriptor = try? MemFD.create(name: "fuzz-qcow2", size: 0) else { return nil }
        var done = 0
        while done < bytes.count {
            guard let base = bytes.baseAddress else { break }
            let written = pwrite(descriptor.rawValue, base + done, bytes.count - done, off_t(done))
            guard written > 0 else { return nil }
            done += written
        }
        return descriptor
    }

    private static func open(_ descriptor: OwnedFileDescriptor, readOnly: Bool) throws -> Qcow2Disk {
        try Qcow2Disk(descriptor: descriptor, path: "fuzz.qcow2", readOnly: readOnly, directAlignment: nil,
                      backingOpenFlags: 0, l2CacheBytes: 4 << 16, logger: logger)
    }

    private static func read(_ disk: Qcow2Disk, into buffer: inout [UInt8], offset: UInt64, length: Int, viaEngine: Bool) -> Int32 {
        guard length > 0 else { return 0 }
        return buffer.withUnsafeMutableBytes { raw in
            var vector = iovec(iov_base: raw.baseAddress, iov_len: length)
            if viaEngine, let result = throughRequest(disk, &vector, offset: offset, length: length, write: false) { return result }
            return disk.read(&vector, count: 1, offset: offset, length: length)
        }
    }

    private static func write(_ disk: Qcow2Disk, _ bytes: [UInt8], offset: UInt64, viaEngine: Bool) -> Int32 {
        guard !bytes.isEmpty else { return 0 }
        var copy = bytes
        return copy.withUnsafeMutableBytes { raw in
            var vector = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
            if viaEngine, let result = throughRequest(disk, &vector, offset: offset, length: raw.count, write: true) { return result }
            return disk.write(&vector, count: 1, offset: offset, length: raw.count)
        }
    }

    /// A read or write through a `Qcow2Request`, its transfers carried out at once, last first
    /// (an engine completes in any order). Nil when the request leaves it to the synchronous path.
    private static func throughRequest(_ disk: Qcow2Disk, _ vector: UnsafeMutablePointer<iovec>, offset: UInt64, length: Int,
                                       write: Bool) -> Int32? {
        let request = Qcow2Request(disk: disk)
        let started = write ? request.startWrite(vector, count: 1, offset: offset, length: length)
            : request.startRead(vector, count: 1, offset: offset, length: length)
        guard var progress = started else { return nil }
        while true {
            switch progress {
            case .finished(let error):
                return error
            case .waiting:
                fatalError("a qcow2 request waits with no transfer in flight")
            case .start(let count):
                var next = Qcow2Request.Progress.waiting
                for index in (0..<count).reversed() {
                    let transfer = request.transfers[index]
                    let error = PositionedTransfer.run(transfer.descriptor, transfer.vectors, count: transfer.count,
                                                       byteCount: transfer.length, offset: transfer.offset,
                                                       write: transfer.direction == .write, pastEnd: .zeroFill)
                    let reported = request.completed(index, result: error == 0 ? Int32(clamping: transfer.length) : -error)
                    if reported != .waiting { next = reported }
                }
                progress = next
            }
        }
    }
}
