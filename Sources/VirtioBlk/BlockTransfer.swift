#if canImport(Glibc)
import Glibc
#endif
import VhostUserBackend
import VirtioCore

/// One request while its storage has it: what the handler keeps of the chain (its iovecs live
/// in the slot's own array, its DISCARD / WRITE_ZEROES segments in the slot's own segments),
/// which step it is at, and where the status byte goes. One per descriptor head, in an array
/// allocated when the queue starts.
struct BlockTransfer {
    enum Operation {
        case read
        case write
        /// A write done, its flush under way (writethrough).
        case writeSync
        case flush
        /// One segment after another (`nextSegment` of `segmentCount`).
        case discard
        case writeZeroes
    }

    var token = RequestToken(head: 0)
    var operation = Operation.read
    /// Data bytes written into the chain when the request succeeds (a read's length).
    var dataWritten = 0
    /// Where the status byte is (inside the chain's memory, which the handler keeps mapped).
    var status: UnsafeMutableRawPointer?
    /// Whether the write must be followed by a flush before it completes (writethrough).
    var syncAfterWrite = false
    /// DISCARD / WRITE_ZEROES: the next segment to start, and how many the request has.
    var nextSegment = 0
    var segmentCount = 0
}
