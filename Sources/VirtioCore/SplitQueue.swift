import VirtioSpec

/// The device side of one split virtqueue (VIRTIO 1.2 §2.7).
///
/// Owned by one worker thread; not shared. It pops available chains (validating every rule of
/// the ring, see docs/virtqueues.md), writes used elements, publishes them in batches and
/// decides when the driver needs a notification and when the device wants kicks.
///
/// A structural violation makes the queue broken: `brokenReason` is set, `nextAvailableIndex`
/// stays at the offending head, and every later `popAvailable` throws the same error. Chains
/// popped before can still be completed with `pushUsed` and `publishUsed`.
public struct SplitQueue {
    /// Where the rings are, and the memory that keeps them mapped.
    public internal(set) var layout: Layout
    /// The negotiated ring features.
    public let features: Features
    /// The next available-ring index to process, i.e. the number of chains consumed (mod 2^16).
    /// This is what GET_VRING_BASE reports and SET_VRING_BASE sets.
    public internal(set) var nextAvailableIndex: UInt16
    /// The used index last published to the driver (`used->idx`).
    public internal(set) var usedIndex: UInt16
    /// Set when the driver broke the ring; the queue no longer pops chains.
    public internal(set) var brokenReason: VirtqueueError?

    /// The used index including elements pushed but not yet published.
    var pendingUsedIndex: UInt16
    /// The avail->idx last read; chains up to it are known to be visible.
    var cachedAvailableIndex: UInt16
    /// The used index at the previous notification decision (`needsNotification`).
    var signalledUsedIndex: UInt16
    /// False until the first notification decision: the driver may be waiting for entries
    /// published before this queue object existed (a reconnect), so the first one notifies.
    var signalledUsedIndexValid = false
    let storage: SegmentStorage
    /// Heads popped and not yet pushed to the used ring.
    let outstanding: OutstandingHeads
    /// The inflight log (INFLIGHT_SHMFD), when the front end gave us an area.
    var inflight: InflightLog?
    let ringMask: UInt16
    /// Most buffer descriptors one chain may have (direct and indirect together), which also
    /// bounds the walk so loops end: the queue size, or more when the device advertises it.
    public let maximumChainLength: Int

    /// Starts a queue on a validated layout.
    ///
    /// - Parameters:
    ///   - nextAvailableIndex: from SET_VRING_BASE (0 for a fresh queue).
    ///   - maximumSegments: capacity of the segment buffer one chain is walked into; a chain that
    ///     needs more segments breaks the queue with `.tooManySegments`. Default: twice the queue
    ///     size, enough for a maximal chain whose every buffer crosses one region boundary.
    ///   - maximumChainLength: the longest chain accepted, when the device lets drivers build
    ///     chains longer than the ring through indirect tables (virtio-blk's seg_max + 2 may exceed
    ///     a small ring: Linux then puts the whole request in one indirect table). Never below the
    ///     queue size.
    /// `usedIndex` starts from the used ring's current `idx`, which a previous back end may have
    /// advanced.
    public init(layout: Layout, features: Features, nextAvailableIndex: UInt16 = 0, maximumSegments: Int? = nil,
                maximumChainLength: Int? = nil) {
        self.layout = layout
        self.features = features
        self.nextAvailableIndex = nextAvailableIndex
        cachedAvailableIndex = nextAvailableIndex
        let currentUsedIndex = RingMemory.loadUInt16(layout.usedRing, offset: SplitRing.usedIndexOffset)
        usedIndex = currentUsedIndex
        pendingUsedIndex = currentUsedIndex
        signalledUsedIndex = currentUsedIndex
        self.maximumChainLength = max(layout.queueSize, min(maximumChainLength ?? 0, SplitRing.maximumQueueSize))
        storage = SegmentStorage(capacity: maximumSegments ?? 2 * self.maximumChainLength)
        outstanding = OutstandingHeads(queueSize: layout.queueSize)
        // queueSize is a validated power of two <= 32768, so queueSize - 1 fits in 16 bits.
        ringMask = UInt16(truncatingIfNeeded: layout.queueSize - 1)
    }

    /// The number of entries in each ring.
    public var queueSize: Int { layout.queueSize }

    /// Whether the driver broke the ring.
    public var isBroken: Bool { brokenReason != nil }

    /// Requests popped (or discarded) and not yet pushed to the used ring.
    public var outstandingCount: Int { outstanding.count }

    /// Capacity of the segment buffer.
    public var maximumSegments: Int { storage.capacity }

    /// Moves the queue to new ring locations of the same size (after the memory table changed
    /// or SET_VRING_ADDR was sent again), keeping every index.
    /// - Throws: `VirtqueueError.invalidQueueSize` if the size differs.
    public mutating func relocate(to newLayout: Layout) throws(VirtqueueError) {
        guard newLayout.queueSize == layout.queueSize else { throw .invalidQueueSize(newLayout.queueSize) }
        layout = newLayout
    }
}
