#if canImport(Glibc)
import Glibc
#endif

/// O_DIRECT (`--cache=none`, `directsync`) needs aligned buffers, offsets and lengths;
/// virtio-blk allows any buffer alignment. A request that misses the alignment is staged
/// through the queue's bounce buffer, served at once, piece by piece. A piece whose ends are not
/// aligned on the file (only when the file's alignment exceeds the 512-byte sector) is read
/// first and written back whole, under `PartialBlockLocks` so queues cannot lose each other's
/// sectors of one block.
extension FileStorageQueue {
    /// Whether `count` iovecs for `length` bytes at file `offset` can go to the file as they
    /// are: always without O_DIRECT; with it, every address on the memory alignment, and the
    /// offset and every length on the offset alignment.
    func isDirectAligned(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int) -> Bool {
        // Both alignments are positive (BlockImage's probe); `%` does not assume powers of two.
        guard let alignment = image.directAlignment else { return true }
        let offsetAlignment = UInt64(alignment.offset)
        let memoryAlignment = UInt(alignment.memory)
        guard offset % offsetAlignment == 0, UInt64(length) % offsetAlignment == 0 else { return false }
        for index in 0..<count {
            let vector = vectors[index]
            guard UInt(bitPattern: vector.iov_base) % memoryAlignment == 0,
                  UInt64(vector.iov_len) % offsetAlignment == 0 else { return false }
        }
        return true
    }

    /// Moves `length` bytes at disk `offset` between the file and `count` vectors through the
    /// bounce buffer.
    func bounce(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int, write: Bool) -> Bool {
        guard let bounce, let base = bounce.baseAddress else { return false }
        let alignment = image.directAlignment?.offset ?? Int(BlockImage.sectorSize)
        var done = 0
        while done < length {
            let (start, skip, piece, span) = bouncePiece(offset: offset, done: done, length: length)
            let staged: Bool
            if !write {
                staged = stage(base, span: span, at: start, write: false)
                    && Self.copy(vectors, count: count, at: done, base + skip, byteCount: piece, intoVectors: true)
            } else if skip != 0 || piece != span {
                // The piece does not cover whole aligned blocks: keep the bytes around it, with
                // no other queue changing them between the read and the write back.
                staged = image.partialBlockLocks.withBlocks(first: start, last: start + UInt64(span) - 1, alignment: alignment) {
                    stage(base, span: span, at: start, write: false)
                        && Self.copy(vectors, count: count, at: done, base + skip, byteCount: piece, intoVectors: false)
                        && stage(base, span: span, at: start, write: true)
                }
            } else {
                staged = Self.copy(vectors, count: count, at: done, base + skip, byteCount: piece, intoVectors: false)
                    && stage(base, span: span, at: start, write: true)
            }
            guard staged else { return false }
            done += piece
        }
        return true
    }

    /// Copies `byteCount` bytes between `buffer` and the vectors' bytes from `position` on.
    static func copy(_ vectors: UnsafeMutablePointer<iovec>, count: Int, at position: Int, _ buffer: UnsafeMutableRawPointer,
                     byteCount: Int, intoVectors: Bool) -> Bool {
        var skip = position
        var copied = 0
        for index in 0..<count where copied < byteCount {
            let vector = vectors[index]
            guard skip < vector.iov_len else {
                skip -= vector.iov_len
                continue
            }
            guard let start = vector.iov_base else { return false }
            let chunk = min(vector.iov_len - skip, byteCount - copied)
            if intoVectors {
                (start + skip).copyMemory(from: buffer + copied, byteCount: chunk)
            } else {
                (buffer + copied).copyMemory(from: start + skip, byteCount: chunk)
            }
            copied += chunk
            skip = 0
        }
        return copied == byteCount
    }

    /// The next piece of a bounced transfer: the aligned file range it stages (`start`,
    /// `span` bytes), where the data starts in it (`skip`) and how much data (`piece`).
    private func bouncePiece(offset: UInt64, done: Int, length: Int) -> (start: UInt64, skip: Int, piece: Int, span: Int) {
        let alignment = image.directAlignment?.offset ?? Int(BlockImage.sectorSize)
        let position = offset + UInt64(done)
        let skip = Int(position % UInt64(alignment))
        let piece = min(Self.bounceCapacity - skip, length - done)
        let span = (skip + piece + alignment - 1) / alignment * alignment
        return (position - UInt64(skip), skip, piece, span)
    }

    /// Moves `span` aligned bytes between the bounce buffer and the file at `start`.
    private func stage(_ base: UnsafeMutableRawPointer, span: Int, at start: UInt64, write: Bool) -> Bool {
        var vector = iovec(iov_base: base, iov_len: span)
        return write
            ? image.write(&vector, count: 1, byteCount: span, offset: start) == 0
            : image.read(&vector, count: 1, byteCount: span, offset: start) == 0
    }
}
