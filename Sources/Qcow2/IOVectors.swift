#if canImport(Glibc)
import Glibc
#endif

/// Byte copies between iovec arrays and plain memory, at an offset into the iovecs' data.
enum IOVectors {
    /// Copies `length` bytes from `source` into the iovecs' data, starting `skipping` bytes in.
    static func copy(_ source: UnsafeRawPointer, length: Int, into vectors: UnsafePointer<iovec>, count: Int, skipping: Int) {
        var skip = skipping
        var copied = 0
        for index in 0..<count where copied < length {
            let vector = vectors[index]
            if skip >= vector.iov_len { skip -= vector.iov_len; continue }
            let piece = min(vector.iov_len - skip, length - copied)
            if let base = vector.iov_base { (base + skip).copyMemory(from: source + copied, byteCount: piece) }
            copied += piece
            skip = 0
        }
    }

    /// Copies `length` bytes of the iovecs' data, from `skipping` bytes in, into `destination`.
    static func copy(from vectors: UnsafePointer<iovec>, count: Int, skipping: Int, into destination: UnsafeMutableRawPointer, length: Int) {
        var skip = skipping
        var copied = 0
        for index in 0..<count where copied < length {
            let vector = vectors[index]
            if skip >= vector.iov_len { skip -= vector.iov_len; continue }
            let piece = min(vector.iov_len - skip, length - copied)
            if let base = vector.iov_base { (destination + copied).copyMemory(from: base + skip, byteCount: piece) }
            copied += piece
            skip = 0
        }
    }

    /// Zero-fills `length` bytes of the iovecs' data from `skipping` bytes in.
    static func zero(_ vectors: UnsafePointer<iovec>, count: Int, skipping: Int, length: Int) {
        var skip = skipping
        var done = 0
        for index in 0..<count where done < length {
            let vector = vectors[index]
            if skip >= vector.iov_len { skip -= vector.iov_len; continue }
            let piece = min(vector.iov_len - skip, length - done)
            if let base = vector.iov_base { (base + skip).initializeMemory(as: UInt8.self, repeating: 0, count: piece) }
            done += piece
            skip = 0
        }
    }

    /// Fills `slice` with the iovecs that describe `length` bytes of the data from `skipping`
    /// bytes in; returns how many (nil when `slice` is too small).
    static func slice(_ vectors: UnsafePointer<iovec>, count: Int, skipping: Int, length: Int,
                      into slice: UnsafeMutableBufferPointer<iovec>) -> Int? {
        var skip = skipping
        var taken = 0
        var used = 0
        for index in 0..<count where taken < length {
            let vector = vectors[index]
            if skip >= vector.iov_len { skip -= vector.iov_len; continue }
            guard used < slice.count else { return nil }
            let piece = min(vector.iov_len - skip, length - taken)
            slice[used] = iovec(iov_base: vector.iov_base.map { $0 + skip }, iov_len: piece)
            used += 1
            taken += piece
            skip = 0
        }
        return taken == length ? used : nil
    }
}
