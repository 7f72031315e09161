#if canImport(Glibc)
import Glibc
#endif
import VirtioCore
import VirtioSpec

/// O_DIRECT (`--cache=none`, `directsync`) needs aligned buffers, offsets and lengths;
/// virtio-blk allows any buffer alignment. A request that misses the alignment is staged
/// through the queue's bounce buffer, served inline, piece by piece. A piece whose ends are not
/// aligned on the file (only when the file's alignment exceeds the 512-byte sector) is read
/// first and written back whole, under `PartialBlockLocks` so queues cannot lose each other's
/// sectors of one block.
extension BlockRequestHandler {
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

    /// Reads `length` bytes at `offset` into the chain's writable side through the bounce buffer.
    func bounceRead(_ chain: DescriptorChain, offset: UInt64, length: Int) -> BlockRequestStatus {
        guard let bounce, let base = bounce.baseAddress else { return .ioError }
        var done = 0
        while done < length {
            let (start, skip, piece, span) = bouncePiece(offset: offset, done: done, length: length)
            guard stage(base, span: span, at: start, write: false) else { return .ioError }
            let copied = chain.copyToWritableBytes(from: UnsafeRawBufferPointer(start: base + skip, count: piece), at: done)
            guard copied == piece else { return .ioError }
            done += piece
        }
        return .ok
    }

    /// Writes `length` bytes of the chain's readable side (after the header) at `offset`
    /// through the bounce buffer.
    func bounceWrite(_ chain: DescriptorChain, offset: UInt64, length: Int) -> BlockRequestStatus {
        guard let bounce, let base = bounce.baseAddress else { return .ioError }
        var done = 0
        while done < length {
            let (start, skip, piece, span) = bouncePiece(offset: offset, done: done, length: length)
            let staged: Bool
            if skip != 0 || piece != span {
                // The piece does not cover whole aligned blocks: keep the bytes around it, with
                // no other queue changing them between the read and the write back.
                let alignment = image.directAlignment?.offset ?? Int(BlockImage.sectorSize)
                staged = image.partialBlockLocks.withBlocks(first: start, last: start + UInt64(span) - 1, alignment: alignment) {
                    stage(base, span: span, at: start, write: false)
                        && copyPiece(chain, into: base + skip, count: piece, from: done)
                        && stage(base, span: span, at: start, write: true)
                }
            } else {
                staged = copyPiece(chain, into: base + skip, count: piece, from: done)
                    && stage(base, span: span, at: start, write: true)
            }
            guard staged else { return .ioError }
            done += piece
        }
        return .ok
    }

    /// Copies `count` bytes of the chain's data, `done` bytes in, to `destination`.
    private func copyPiece(_ chain: DescriptorChain, into destination: UnsafeMutableRawPointer, count: Int, from done: Int) -> Bool {
        chain.copyReadableBytes(into: UnsafeMutableRawBufferPointer(start: destination, count: count),
                                from: BlockRequestHeader.byteCount + done) == count
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
