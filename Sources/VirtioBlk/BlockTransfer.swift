#if canImport(Glibc)
import Glibc
#endif
import VhostUserBackend
import VirtioCore

/// A read, write or flush of one request while the I/O engine has it: what the handler keeps
/// of the chain (its iovecs live in the slot's own array), where the transfer stands, and where
/// the status byte goes. One per descriptor head, in an array allocated when the queue starts.
struct BlockTransfer {
    enum Operation {
        case read
        case write
        /// A write done, its fdatasync under way (writethrough).
        case writeSync
        case flush
        /// Network disks only (`BlockRequestHandler+Storage`); files serve them inline.
        case discard
        case writeZeroes
    }

    var token = RequestToken(head: 0)
    var operation = Operation.read
    /// The file the engine moves the bytes to or from: the image file, or (qcow2) the file of
    /// the chain that holds them.
    var descriptor: Int32 = -1
    /// The file offset of the next byte to transfer.
    var offset: UInt64 = 0
    /// Bytes still to transfer.
    var remaining = 0
    /// The first iovec not yet complete, and how many the slot holds.
    var firstVector = 0
    var vectorCount = 0
    /// Data bytes written into the chain when the request succeeds (a read's length).
    var dataWritten = 0
    /// Where the status byte is (inside the chain's memory, which `memory` keeps mapped).
    var status: UnsafeMutableRawPointer?
    /// Whether the write must be followed by an fdatasync before it completes.
    var syncAfterWrite = false
    /// Resubmissions after EAGAIN / EINTR, bounded.
    var retries = 0
}
