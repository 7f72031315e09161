/// A violation of the split-ring format by the driver (or front end), found while setting a
/// queue up or walking it.
///
/// Policy: every case is structural, so the consequence is always `.queueBroken`: the queue
/// stops processing (`SplitQueue.popAvailable` keeps throwing the same error), requests already
/// popped may still be completed, and the back end signals the queue's error eventfd. Problems
/// inside a well-formed request (a short header, an unknown request type, a sector out of range)
/// are not errors of this layer: the device answers them (virtio-blk: IOERR or UNSUPP) and the
/// queue goes on.
public enum VirtqueueError: Error, Equatable, Sendable {
    /// Which part of the queue a layout error concerns.
    public enum Ring: Equatable, Sendable {
        case descriptorTable
        case availableRing
        case usedRing
    }

    /// What the caller must do about an error.
    public enum Consequence: Equatable, Sendable {
        /// Stop processing the queue and signal its error eventfd.
        case queueBroken
        /// The chain could not be translated yet (an IOMMU miss or fault); the queue works on.
        case retryLater
    }

    // Layout (SET_VRING_NUM / SET_VRING_ADDR).

    /// The queue size is not a power of two in 1...32768.
    case invalidQueueSize(Int)
    /// A ring's address (or its host address) is not a multiple of its alignment (16/2/4).
    case ringMisaligned(Ring, address: UInt64, alignment: Int)
    /// A ring does not lie entirely inside one memory region.
    case ringNotInGuestMemory(Ring, address: UInt64, length: Int)

    // Available ring.

    /// avail->idx moved more than the queue size past the next index to process.
    case availableIndexJumped(previous: UInt16, current: UInt16, queueSize: Int)

    // Descriptor walk.

    /// A head or `next` index in the descriptor table is not below the queue size.
    case descriptorIndexOutOfRange(index: UInt16, queueSize: Int)
    /// A `next` index inside an indirect table is not below the table's entry count.
    case indirectIndexOutOfRange(index: UInt16, tableSize: Int)
    /// More than `limit` (the queue size) buffer descriptors in one chain, direct and indirect
    /// together; this is also how a loop is caught.
    case chainTooLong(limit: Int)
    /// The chain's buffers add up to more than 2^32 bytes.
    case chainByteCountTooLarge(limit: UInt64)
    /// An INDIRECT descriptor although VIRTIO_F_INDIRECT_DESC was not negotiated.
    case indirectNotNegotiated
    /// An indirect table length that is 0, not a multiple of 16, or more than 16·queue size.
    case indirectTableLengthInvalid(length: UInt32)
    /// An indirect table that crosses from one memory region into another; tables are read in place
    /// and must be contiguous in host memory.
    case indirectTableSpansRegions(address: UInt64, length: UInt32)
    /// An INDIRECT descriptor inside an indirect table.
    case nestedIndirect
    /// A descriptor with both INDIRECT and NEXT set.
    case indirectWithNext
    /// A device-readable descriptor after a device-writable one.
    case readableAfterWritable
    /// A buffer (or indirect table) with a byte outside every memory region.
    case addressNotInGuestMemory(address: UInt64, length: UInt32)
    /// `address + length` passes 2^64.
    case addressOverflow(address: UInt64, length: UInt32)
    /// The chain needs more host segments than the queue's segment buffer holds (a buffer
    /// crossing many regions).
    case tooManySegments(limit: Int)
    /// The driver made `head` available again while the device still had it (popped, not yet
    /// used).
    case headAlreadyOutstanding(head: UInt16)
    /// The translator deferred a buffer at `address` (see `SegmentTranslation.deferred`). Not a
    /// ring violation: the queue is not broken and the chain stays available.
    case translationDeferred(address: UInt64)

    /// What the caller must do about this error (see the type's documentation).
    public var consequence: Consequence {
        switch self {
        case .invalidQueueSize, .ringMisaligned, .ringNotInGuestMemory, .availableIndexJumped,
             .descriptorIndexOutOfRange, .indirectIndexOutOfRange, .chainTooLong, .chainByteCountTooLarge,
             .indirectNotNegotiated, .indirectTableLengthInvalid, .indirectTableSpansRegions, .nestedIndirect,
             .indirectWithNext, .readableAfterWritable, .addressNotInGuestMemory, .addressOverflow,
             .tooManySegments, .headAlreadyOutstanding:
            return .queueBroken
        case .translationDeferred:
            return .retryLater
        }
    }
}
