#if canImport(Glibc)
import Glibc
#endif

/// One transfer a qcow2 request asks of the caller's I/O engine: `length` bytes between `count`
/// iovecs and `descriptor` at `offset`. The iovecs, and the memory they point to, stay valid
/// until the request hears of its completion.
public struct Qcow2Transfer {
    public enum Direction: Sendable {
        case read
        case write
    }

    public var direction: Direction
    public var descriptor: Int32
    public var vectors: UnsafeMutablePointer<iovec>
    public var count: Int
    public var offset: UInt64
    public var length: Int
}
