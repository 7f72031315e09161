#if canImport(Glibc)
import Glibc
#endif

/// Byte copies between iovec arrays and plain memory, at an offset into the iovecs' data.
enum IOVectors {
    /// Calls `body` with each piece of the iovecs' data covering `length` bytes from `skipping`
    /// bytes in: the piece's memory (nil for a null iovec), its length, and the bytes before it.
    private static func forEachPiece(_ vectors: UnsafePointer<iovec>, count: Int, skipping: Int, length: Int,
                                     _ body: (UnsafeMutableRawPointer?, Int, Int) -> Void) {
        var skip = skipping
        var done = 0
        for index in 0..<count where done < length {
            let vector = vectors[index]
            if skip >= vector.iov_len { skip -= vector.iov_len; continue }
            let piece = min(vector.iov_len - skip, length - done)
            body(vector.iov_base.map { $0 + skip }, piece, done)
            done += piece
            skip = 0
        }
    }

    /// Copies `length` bytes from `source` into the iovecs' data, starting `skipping` bytes in.
    static func copy(_ source: UnsafeRawPointer, length: Int, into vectors: UnsafePointer<iovec>, count: Int, skipping: Int) {
        forEachPiece(vectors, count: count, skipping: skipping, length: length) { base, piece, done in
            base?.copyMemory(from: source + done, byteCount: piece)
        }
    }

    /// Copies `length` bytes of the iovecs' data, from `skipping` bytes in, into `destination`.
    static func copy(from vectors: UnsafePointer<iovec>, count: Int, skipping: Int, into destination: UnsafeMutableRawPointer, length: Int) {
        forEachPiece(vectors, count: count, skipping: skipping, length: length) { base, piece, done in
            if let base { (destination + done).copyMemory(from: base, byteCount: piece) }
        }
    }

    /// Zero-fills `length` bytes of the iovecs' data from `skipping` bytes in.
    static func zero(_ vectors: UnsafePointer<iovec>, count: Int, skipping: Int, length: Int) {
        forEachPiece(vectors, count: count, skipping: skipping, length: length) { base, piece, _ in
            base?.initializeMemory(as: UInt8.self, repeating: 0, count: piece)
        }
    }

    /// Fills `slice` with the iovecs that describe `length` bytes of the data from `skipping`
    /// bytes in; returns how many (nil when `slice` is too small or the iovecs too short).
    static func slice(_ vectors: UnsafePointer<iovec>, count: Int, skipping: Int, length: Int,
                      into slice: UnsafeMutableBufferPointer<iovec>) -> Int? {
        var used = 0
        var taken = 0
        var fits = true
        forEachPiece(vectors, count: count, skipping: skipping, length: length) { base, piece, _ in
            guard used < slice.count else { fits = false; return }
            slice[used] = iovec(iov_base: base, iov_len: piece)
            used += 1
            taken += piece
        }
        return fits && taken == length ? used : nil
    }
}
