/// A host cluster an asynchronous write reserved for a guest cluster whose L2 entry may not be
/// on disk yet. While it exists, every write to that guest cluster goes to `host` and writes
/// the cluster's refcount, then its L2 entry, before it completes (`Qcow2Request`); the last
/// of them to finish removes it.
struct InFlightAllocation {
    var host: UInt64
    /// The L2 entry in memory names `host` (set once a refcount write of it completed).
    var linked = false
    /// Requests whose writes land in `host` and have not finished.
    var users = 1
}

/// Allocations made for asynchronous writes. Their order is the synchronous path's: the
/// refcount is written before the L2 entry naming the cluster; the data may land before or
/// after either, as the cluster read as zeroes before it was allocated (only such clusters are
/// allocated this way: no backing data to copy, a regular file whose new clusters read as
/// zeroes). A kill -9 at any point therefore leaves at worst a leaked cluster.
extension Qcow2Metadata {
    /// The most allocations in flight at once before the dictionary grows (it is sized once).
    static let expectedInFlightAllocations = 1024

    /// Takes a new host cluster at the end of the file: its refcount is 1 in memory (the caller
    /// writes `refcountBytes` of block `refcountBlock` before linking it) and the file covers it.
    /// A new refcount block, or a larger refcount table, is made synchronously first, as
    /// `allocateCluster` makes it.
    func reserveCluster() throws(Qcow2Error) -> (host: UInt64, refcountBlock: UInt64, refcountBytes: Range<Int>) {
        let index = nextFreeCluster
        let host = try clusterOffset(index)
        nextFreeCluster += 1
        let blockOffset = try refcountBlockOffset(covering: index)
        let block = try refcountBlock(at: blockOffset)
        let changed = setRefcountEntry(block, Int(index % UInt64(geometry.refcountBlockEntries)), 1)
        let end = host + geometry.clusterSize64
        if fileSize < end {
            try file.extend(to: end)
            fileSize = end
        }
        return (host, blockOffset, changed.start..<(changed.start + changed.count))
    }

    /// Where cluster `index`'s refcount is: its block's file offset and the bytes holding it.
    /// Nil when no block covers it.
    func refcountLocation(ofCluster index: UInt64) -> (block: UInt64, bytes: Range<Int>)? {
        let entries = UInt64(geometry.refcountBlockEntries)
        let tableIndex = index / entries
        guard tableIndex < UInt64(refcountTableEntries) else { return nil }
        let blockOffset = refcountTable.base.bigEndianUInt64(at: Int(tableIndex) * 8) & ClusterGeometry.offsetMask
        guard blockOffset != 0 else { return nil }
        let bit = Int(index % entries) * geometry.refcountBits
        let start = bit / 8
        return (blockOffset, start..<(start + max(1, geometry.refcountBits / 8)))
    }

    /// The file alignment's blocks covering `bytes` of a table of `count` bytes.
    func alignedRange(_ bytes: Range<Int>, within count: Int) -> Range<Int> {
        let alignment = file.alignment
        return (bytes.lowerBound / alignment * alignment)..<min(count, (bytes.upperBound + alignment - 1) / alignment * alignment)
    }

    /// Whether an allocation for an asynchronous write is in flight for a guest cluster among
    /// the `length` bytes at `offset`: such writes cannot go straight to the file.
    func hasAllocationInFlight(offset: UInt64, length: Int) -> Bool {
        guard !inFlight.isEmpty, length > 0 else { return false }
        var cluster = offset - UInt64(geometry.offsetInCluster(offset))
        while cluster < offset + UInt64(length) {
            if inFlight[cluster] != nil { return true }
            cluster += geometry.clusterSize64
        }
        return false
    }

    /// A synchronous writer (or zeroing) meeting an allocation in flight for `guestCluster`
    /// finishes its ordering first, on its own: the refcount written through, the L2 entry set
    /// and written through. It may then treat the cluster as any allocated one.
    func settleAllocationInFlight(_ guestCluster: UInt64) throws(Qcow2Error) {
        guard var allocation = inFlight[guestCluster] else { return }
        let index = geometry.clusterIndex(allocation.host)
        guard let location = refcountLocation(ofCluster: index) else {
            throw markCorrupt("no refcount block covers the cluster at 0x\(String(allocation.host, radix: 16)) being allocated")
        }
        try writeThrough(try refcountBlock(at: location.block), at: location.block, changed: location.bytes.lowerBound,
                         count: location.bytes.count)
        let (table, tableOffset, entryIndex) = try l2TableForWriting(guestCluster)
        if !allocation.linked {
            table.base.storeBigEndian(allocation.host | ClusterMapping.copiedFlag, at: entryIndex * geometry.l2EntrySize)
            allocation.linked = true
            inFlight[guestCluster] = allocation
        }
        try writeThrough(table, at: tableOffset, changed: entryIndex * geometry.l2EntrySize, count: 8)
    }
}
