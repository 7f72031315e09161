#if canImport(Glibc)
import Glibc
#endif

extension DescriptorChain {
    /// Fills `vectors` with `iovec`s covering bytes `offset..<offset+length` of `side`, for
    /// `preadv` (into the writable side) or `pwritev` (from the readable side) directly on guest
    /// memory. A range may start and end anywhere inside a segment. Allocates nothing.
    ///
    /// - Returns: the number of vectors written (0 for an empty range), or nil if the range is
    ///   not inside `side` or needs more than `vectors.count` vectors.
    public func fillIOVectors(_ side: Side, offset: Int, length: Int,
                              into vectors: UnsafeMutableBufferPointer<iovec>) -> Int? {
        var count = 0
        var fits = true
        let inRange = forEachPiece(side, offset: offset, length: length) { pointer, pieceLength in
            guard count < vectors.count else {
                fits = false
                return false
            }
            vectors[count] = iovec(iov_base: pointer, iov_len: pieceLength)
            count += 1
            return true
        }
        guard inRange, fits else { return nil }
        return count
    }
}
