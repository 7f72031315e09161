/// A bounded cache of one-cluster metadata tables (L2 tables, refcount blocks) keyed by their
/// offset in the image file, least recently used evicted. Write-through: whoever changes a
/// table writes the change to the file at once, so an evicted table never needs writing back.
/// Buffers are allocated as slots are first used and reused after.
///
/// A table an asynchronous write is reading from is pinned: it is not evicted (its buffer not
/// reused) until unpinned. When every slot is pinned the cache grows past its capacity rather
/// than wait (by as many slots as were pinned at once; pins last one request).
final class TableCache {
    private let clusterSize: Int
    let capacity: Int
    private var buffers: [AlignedBuffer] = []
    private var offsets: [UInt64] = []
    private var lastUse: [UInt64] = []
    private var pins: [Int] = []
    private var slots: [UInt64: Int] = [:]
    private var clock: UInt64 = 0
    /// Tables evicted or removed so far: a table read from the file while this did not change
    /// cannot have been changed in memory meanwhile (`Qcow2Metadata.installL2Table`).
    private(set) var evictions: UInt64 = 0

    init(clusterSize: Int, capacity: Int) {
        self.clusterSize = clusterSize
        self.capacity = max(capacity, 1)
        slots.reserveCapacity(self.capacity)
    }

    /// The table found last: requests near each other use the same table, and one L2 table
    /// maps 512 MiB with 64 KiB clusters, so this spares most dictionary lookups.
    private var recent: (offset: UInt64, slot: Int)?

    /// The table at `offset`, if cached.
    func lookup(_ offset: UInt64) -> AlignedBuffer? {
        if let recent, recent.offset == offset { return buffers[recent.slot] }
        guard let slot = slots[offset] else { return nil }
        clock &+= 1
        lastUse[slot] = clock
        recent = (offset, slot)
        return buffers[slot]
    }

    /// A slot for the table at `offset` (evicting the least recently used when full); the caller
    /// fills it, or calls `remove` if it cannot.
    func insert(_ offset: UInt64) -> AlignedBuffer {
        if let existing = lookup(offset) { return existing }
        clock &+= 1
        recent = nil
        let slot: Int
        var oldest: Int?
        if buffers.count >= capacity {
            for index in 0..<lastUse.count where pins[index] == 0 {
                if let current = oldest, lastUse[current] <= lastUse[index] { continue }
                oldest = index
            }
        }
        if let oldest {
            slot = oldest
            if offsets[slot] != UInt64.max { slots[offsets[slot]] = nil }
            evictions &+= 1
            offsets[slot] = offset
            lastUse[slot] = clock
        } else {
            buffers.append(AlignedBuffer(byteCount: clusterSize))
            offsets.append(offset)
            lastUse.append(clock)
            pins.append(0)
            slot = buffers.count - 1
        }
        slots[offset] = slot
        return buffers[slot]
    }

    /// Forgets the table at `offset` (failed to load, or freed).
    func remove(_ offset: UInt64) {
        if recent?.offset == offset { recent = nil }
        guard let slot = slots[offset] else { return }
        evictions &+= 1
        slots[offset] = nil
        offsets[slot] = UInt64.max
        lastUse[slot] = 0
    }

    /// Keeps the cached table at `offset` in its buffer until `unpin`. False when not cached.
    func pin(_ offset: UInt64) -> Bool {
        guard let slot = slots[offset] else { return false }
        pins[slot] += 1
        return true
    }

    func unpin(_ offset: UInt64) {
        guard let slot = slots[offset], pins[slot] > 0 else { return }
        pins[slot] -= 1
    }

    /// Tables cached now.
    var count: Int { slots.count }
}
