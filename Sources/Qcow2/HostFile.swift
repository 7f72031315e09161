#if canImport(Glibc)
import Glibc
#endif
import VhostSystem

/// One file of an image chain (the qcow2 container or a backing file): positioned reads and
/// writes carried to completion, O_DIRECT's alignment honoured by staging what misses it, and
/// reads past the end of the file seen as zeroes (a sparse image's tail), as QEMU's file driver
/// sees them.
final class HostFile: @unchecked Sendable {
    // SAFETY (Sendable): immutable fields; positioned I/O on one descriptor is thread-safe.
    let descriptor: OwnedFileDescriptor
    let path: String
    /// The offset and length alignment of transfers: the file's O_DIRECT alignment, else 512.
    let alignment: Int
    /// The buffer address alignment O_DIRECT needs (1 without O_DIRECT).
    let memoryAlignment: Int
    /// A regular file: what was never written reads as zeroes (a block device's does not).
    let isRegularFile: Bool

    init(descriptor: OwnedFileDescriptor, path: String, directAlignment: (memory: Int, offset: Int)?) {
        self.descriptor = descriptor
        self.path = path
        alignment = max(512, directAlignment?.offset ?? 512)
        memoryAlignment = max(1, directAlignment?.memory ?? 1)
        isRegularFile = (try? descriptor.isRegularFile()) ?? false
    }

    /// Makes the file at least `size` bytes long (the new bytes read as zeroes).
    func extend(to size: UInt64) throws(Qcow2Error) {
        while ftruncate(descriptor.rawValue, off_t(truncatingIfNeeded: size)) != 0 {
            guard errno == EINTR else { throw .io(path: path, call: "ftruncate", errno: errno) }
        }
    }

    var rawValue: Int32 { descriptor.rawValue }

    func size() throws(Qcow2Error) -> UInt64 {
        do { return try descriptor.size() } catch { throw .io(path: path, call: "fstat", errno: error.errno) }
    }

    /// Reads `buffer.count` bytes at `offset` into `buffer` (aligned memory, an aligned offset and
    /// length); the part past the end of the file reads as zeroes.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(Qcow2Error) {
        var vector = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        let error = transfer(&vector, count: 1, byteCount: buffer.count, offset: offset, write: false)
        guard error == 0 else { throw .io(path: path, call: "pread", errno: error) }
    }

    /// Writes `buffer` (aligned memory, an aligned offset and length) at `offset`.
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(Qcow2Error) {
        var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: buffer.baseAddress), iov_len: buffer.count)
        let error = transfer(&vector, count: 1, byteCount: buffer.count, offset: offset, write: true)
        guard error == 0 else { throw .io(path: path, call: "pwrite", errno: error) }
    }

    /// Whether `count` iovecs for `length` bytes at `offset` can go to the file as they are.
    func isAligned(_ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, length: Int) -> Bool {
        guard offset % UInt64(alignment) == 0, length % alignment == 0 else { return false }
        guard memoryAlignment > 1 || alignment > 512 else { return true }
        for index in 0..<count {
            guard UInt(bitPattern: vectors[index].iov_base) % UInt(memoryAlignment) == 0,
                  vectors[index].iov_len % alignment == 0 else { return false }
        }
        return true
    }

    /// Guest data: `length` bytes between `count` iovecs and the file at `offset`, in any
    /// alignment (staged through aligned memory when O_DIRECT needs it; a write that covers part
    /// of an aligned block reads the block first: the caller serialises such writes). Returns 0
    /// or an errno.
    func transferData(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int, write: Bool) -> Int32 {
        if isAligned(vectors, count: count, offset: offset, length: length) {
            return transfer(vectors, count: count, byteCount: length, offset: offset, write: write)
        }
        let start = offset / UInt64(alignment) * UInt64(alignment)
        let skip = Int(offset - start)
        let span = (skip + length + alignment - 1) / alignment * alignment
        let staging = AlignedBuffer(byteCount: span)
        var whole = iovec(iov_base: staging.base, iov_len: span)
        if write {
            if skip != 0 || span != length {
                let error = transfer(&whole, count: 1, byteCount: span, offset: start, write: false)
                guard error == 0 else { return error }
            }
            IOVectors.copy(from: vectors, count: count, skipping: 0, into: staging.base + skip, length: length)
            whole = iovec(iov_base: staging.base, iov_len: span)
            return transfer(&whole, count: 1, byteCount: span, offset: start, write: true)
        }
        let error = transfer(&whole, count: 1, byteCount: span, offset: start, write: false)
        guard error == 0 else { return error }
        IOVectors.copy(UnsafeRawPointer(staging.base + skip), length: length, into: vectors, count: count, skipping: 0)
        return 0
    }

    /// The whole transfer; reads past the end of the file fill zeroes. 0 or an errno.
    private func transfer(_ vectors: UnsafeMutablePointer<iovec>, count: Int, byteCount: Int, offset: UInt64, write: Bool) -> Int32 {
        PositionedTransfer.run(descriptor.rawValue, vectors, count: count, byteCount: byteCount, offset: offset, write: write,
                               pastEnd: .zeroFill)
    }
}
