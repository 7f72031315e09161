#if canImport(Glibc)
import Glibc
#endif

/// One tag's read, write or fdatasync while the I/O engine has it: where it stands, continued
/// after short transfers and EAGAIN / EINTR until it is whole. One per tag, in an array
/// allocated when the queue starts.
struct FileTransfer {
    enum Operation {
        case read
        case write
        case synchronize
    }

    var operation = Operation.read
    /// The file the engine moves the bytes to or from: the image file, or (qcow2) the file of
    /// the chain that holds them.
    var descriptor: Int32 = -1
    /// The file offset of the next byte to transfer.
    var offset: UInt64 = 0
    /// Bytes still to transfer.
    var remaining = 0
    /// The caller's iovecs (rewritten as the transfer advances), the first not yet complete,
    /// and how many there are.
    var vectors: UnsafeMutablePointer<iovec>?
    var firstVector = 0
    var vectorCount = 0
    /// Resubmissions after EAGAIN / EINTR, bounded.
    var retries = 0
    /// In flight: a completion for a tag that is not is ignored.
    var active = false
}
