#if canImport(Glibc)
import Glibc
#endif

/// The bytes a write puts on the disk: a request's iovecs, or zeroes (WRITE_ZEROES on part of a
/// cluster). Offsets are relative to the start of the write.
enum WriteSource {
    case vectors(UnsafeMutablePointer<iovec>, count: Int)
    case zeroes

    /// Copies `length` bytes from `skipping` bytes in to `destination`.
    func copy(skipping: Int, length: Int, into destination: UnsafeMutableRawPointer) {
        switch self {
        case .vectors(let vectors, let count):
            IOVectors.copy(from: vectors, count: count, skipping: skipping, into: destination, length: length)
        case .zeroes:
            destination.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        }
    }
}
