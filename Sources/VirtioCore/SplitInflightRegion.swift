/// One split queue's part of the inflight tracking area (vhost-user spec, "Inflight I/O
/// tracking"), in shared memory that outlives the back end: the front end keeps the memfd and
/// hands it back after a crash.
///
/// Layout (native byte order, little-endian here):
/// ```
/// u64 features @0 (0)   u16 version @8 (1; 0 = never used)   u16 desc_num @10 (queue size)
/// u16 last_batch_head @12   u16 used_idx @14
/// desc[desc_num] @16, 16 bytes each: u8 inflight @0, u8 padding[5], u16 next @6, u64 counter @8
/// ```
///
/// The update order makes a crash between any two stores recoverable:
/// 1. fetching head h: `recordFetch` stores desc[h].counter, then desc[h].inflight = 1;
/// 2. completing a batch: `linkIntoBatch` for each head (desc[h].next = last_batch_head,
///    last_batch_head = h) while its used element is written; the ring's used->idx is
///    published; then `clearInflight` for each head; then `storeUsedIndex(used->idx)`.
///
/// `recover` undoes what a crash left half done: if used->idx moved past used_idx, the last
/// batch reached the driver, so its heads (the used->idx − used_idx heads of the list from
/// last_batch_head) are no longer in flight.
///
/// A value type over memory it does not own: the mapping must outlive it.
public struct SplitInflightRegion {
    public static let headerByteCount = 16
    public static let descriptorStateByteCount = 16
    public static let currentVersion: UInt16 = 1
    /// Regions are 64-byte aligned in the area, as libvhost-user lays them out.
    public static let alignment = 64

    /// Bytes one queue's region takes in the area.
    public static func byteCount(queueSize: Int) -> Int {
        (headerByteCount + descriptorStateByteCount * queueSize + alignment - 1) / alignment * alignment
    }

    public let base: UnsafeMutableRawPointer
    public let queueSize: Int

    /// - Parameters:
    ///   - base: the region's first byte, with `byteCount(queueSize:)` bytes mapped writable.
    public init(base: UnsafeMutableRawPointer, queueSize: Int) {
        self.base = base
        self.queueSize = queueSize
    }

    // MARK: Header fields

    public var version: UInt16 { RingMemory.loadUInt16(base, offset: 8) }
    public var descriptorCount: UInt16 { RingMemory.loadUInt16(base, offset: 10) }
    public var lastBatchHead: UInt16 { RingMemory.loadUInt16(base, offset: 12) }
    public var usedIndex: UInt16 { RingMemory.loadUInt16(base, offset: 14) }

    public func isInflight(_ head: UInt16) -> Bool { base.load(fromByteOffset: entry(head), as: UInt8.self) == 1 }
    public func counter(_ head: UInt16) -> UInt64 { RingMemory.loadUInt64(base, offset: entry(head) + 8) }
    public func next(_ head: UInt16) -> UInt16 { RingMemory.loadUInt16(base, offset: entry(head) + 6) }

    private func entry(_ head: UInt16) -> Int { Self.headerByteCount + Self.descriptorStateByteCount * Int(head) }

    // MARK: Setting up

    /// Zeroes the region and writes version 1 and the queue size: a queue with nothing in
    /// flight whose used index is `usedIndex`.
    public func format(usedIndex: UInt16 = 0) {
        base.initializeMemory(as: UInt8.self, repeating: 0, count: Self.byteCount(queueSize: queueSize))
        RingMemory.storeUInt16(UInt16(truncatingIfNeeded: queueSize), base, offset: 10)
        RingMemory.storeUInt16(usedIndex, base, offset: 14)
        RingMemory.storeUInt16(Self.currentVersion, base, offset: 8)
    }

    // MARK: Updates, in the order the type's documentation gives

    /// Step 1 of a fetch: the counter, then the inflight flag.
    public func recordFetch(head: UInt16, counter: UInt64) {
        RingMemory.storeUInt64(counter, base, offset: entry(head) + 8)
        RingMemory.releaseFence()
        base.storeBytes(of: UInt8(1), toByteOffset: entry(head), as: UInt8.self)
    }

    /// Puts `head` at the front of the last-batch list (before its used element is published).
    public func linkIntoBatch(head: UInt16) {
        RingMemory.storeUInt16(lastBatchHead, base, offset: entry(head) + 6)
        RingMemory.releaseFence()
        RingMemory.storeUInt16(head, base, offset: 12)
    }

    /// After the ring's used->idx was published: `head` is done.
    public func clearInflight(head: UInt16) {
        RingMemory.releaseFence()
        base.storeBytes(of: UInt8(0), toByteOffset: entry(head), as: UInt8.self)
    }

    /// Last step of a batch: the used index the ring now shows.
    public func storeUsedIndex(_ index: UInt16) {
        RingMemory.releaseFence()
        RingMemory.storeUInt16(index, base, offset: 14)
    }

    // MARK: After a restart

    /// Checks the region a restarted back end received, repairs the last batch against the
    /// ring's used->idx and lists what to resubmit. A version-0 region (never used) is
    /// formatted instead.
    ///
    /// - Parameters:
    ///   - regionBytes: how many bytes are mapped at `base`.
    ///   - usedRingIndex: used->idx as the driver sees it now.
    /// - Throws: `InflightError` for a region that breaks the layout's rules; nothing is
    ///   written then.
    public func recover(regionBytes: Int, usedRingIndex: UInt16) throws(InflightError) -> InflightRecovery {
        let needed = Self.byteCount(queueSize: queueSize)
        guard regionBytes >= needed else { throw .regionTooSmall(bytes: regionBytes, needed: needed) }
        if version == 0 {
            format(usedIndex: usedRingIndex)
            return InflightRecovery(resubmit: [], nextAvailableIndex: usedRingIndex, nextCounter: 1)
        }
        guard version == Self.currentVersion else { throw .unsupportedVersion(version) }
        guard Int(descriptorCount) == queueSize else { throw .queueSizeMismatch(region: descriptorCount, ring: queueSize) }
        for head in 0..<UInt16(truncatingIfNeeded: queueSize) {
            let flag = base.load(fromByteOffset: entry(head), as: UInt8.self)
            guard flag <= 1 else { throw .invalidInflightFlag(head: Int(head), value: flag) }
        }
        // Validate the whole last batch before changing anything.
        let batchLength = Int(usedRingIndex &- usedIndex)
        guard batchLength <= queueSize else { throw .lastBatchTooLong(batchLength) }
        var batch: [UInt16] = []
        var cursor = lastBatchHead
        for _ in 0..<batchLength {
            guard Int(cursor) < queueSize else { throw .batchHeadOutOfRange(cursor) }
            batch.append(cursor)
            cursor = next(cursor)
        }
        for head in batch { clearInflight(head: head) }
        if batchLength > 0 { storeUsedIndex(usedRingIndex) }

        var inflight: [(head: UInt16, counter: UInt64)] = []
        var largest: UInt64 = 0
        for head in 0..<UInt16(truncatingIfNeeded: queueSize) {
            largest = max(largest, counter(head))
            if isInflight(head) { inflight.append((head, counter(head))) }
        }
        inflight.sort { $0.counter < $1.counter }
        return InflightRecovery(resubmit: inflight.map(\.head),
                                nextAvailableIndex: usedRingIndex &+ UInt16(truncatingIfNeeded: inflight.count),
                                nextCounter: largest &+ 1)
    }
}
