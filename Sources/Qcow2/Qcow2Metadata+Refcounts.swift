#if canImport(Glibc)
import Glibc
#endif

/// Refcounts: read and written one entry at a time through the refcount block cache, every
/// change written through. New refcount blocks, and a larger refcount table, are written whole
/// before anything points to them, so a crash leaves at worst clusters nobody uses.
extension Qcow2Metadata {
    /// The refcount block at `offset`, loaded if needed.
    func refcountBlock(at offset: UInt64) throws(Qcow2Error) -> AlignedBuffer {
        if let block = refcountCache.lookup(offset) { return block }
        let block = refcountCache.insert(offset)
        do {
            try file.read(into: block.bytes, at: offset)
        } catch {
            refcountCache.remove(offset)
            throw error
        }
        return block
    }

    /// Entry `index` of a refcount block (refcount_bits wide; below 8 bits, bit 0 is the least
    /// significant bit of its byte).
    func refcountEntry(_ block: AlignedBuffer, _ index: Int) -> UInt64 {
        let base = UnsafeRawPointer(block.base)
        switch geometry.refcountOrder {
        case 0, 1, 2:
            let bits = geometry.refcountBits
            let bit = index * bits
            let byte = base.load(fromByteOffset: bit / 8, as: UInt8.self)
            return UInt64(byte >> UInt8(bit % 8)) & ((1 << UInt64(bits)) - 1)
        case 3: return UInt64(base.load(fromByteOffset: index, as: UInt8.self))
        case 4: return UInt64(base.bigEndianUInt16(at: index * 2))
        case 5: return UInt64(base.bigEndianUInt32(at: index * 4))
        default: return base.bigEndianUInt64(at: index * 8)
        }
    }

    /// Sets entry `index`; returns the byte range changed (for the write-through).
    func setRefcountEntry(_ block: AlignedBuffer, _ index: Int, _ value: UInt64) -> (start: Int, count: Int) {
        let base = block.base
        switch geometry.refcountOrder {
        case 0, 1, 2:
            let bits = geometry.refcountBits
            let bit = index * bits
            let mask = UInt8(truncatingIfNeeded: (1 << bits) - 1) << UInt8(bit % 8)
            let old = base.load(fromByteOffset: bit / 8, as: UInt8.self)
            let new = (old & ~mask) | (UInt8(truncatingIfNeeded: value) << UInt8(bit % 8)) & mask
            base.storeBytes(of: new, toByteOffset: bit / 8, as: UInt8.self)
            return (bit / 8, 1)
        case 3:
            base.storeBytes(of: UInt8(truncatingIfNeeded: value), toByteOffset: index, as: UInt8.self)
            return (index, 1)
        case 4:
            base.storeBytes(of: UInt16(truncatingIfNeeded: value).bigEndian, toByteOffset: index * 2, as: UInt16.self)
            return (index * 2, 2)
        case 5:
            base.storeBytes(of: UInt32(truncatingIfNeeded: value).bigEndian, toByteOffset: index * 4, as: UInt32.self)
            return (index * 4, 4)
        default:
            base.storeBigEndian(value, at: index * 8)
            return (index * 8, 8)
        }
    }

    var maximumRefcount: UInt64 { geometry.refcountBits == 64 ? UInt64.max : (1 << UInt64(geometry.refcountBits)) - 1 }

    /// The refcount of host cluster `index` (0 where no refcount block covers it).
    func refcount(ofCluster index: UInt64) throws(Qcow2Error) -> UInt64 {
        let entries = UInt64(geometry.refcountBlockEntries)
        let tableIndex = index / entries
        guard tableIndex < UInt64(refcountTableEntries) else { return 0 }
        let blockOffset = refcountTable.base.bigEndianUInt64(at: Int(tableIndex) * 8) & ClusterGeometry.offsetMask
        guard blockOffset != 0 else { return 0 }
        return refcountEntry(try refcountBlock(at: blockOffset), Int(index % entries))
    }

    /// Sets the refcount of host cluster `index`, making its refcount block (and a larger
    /// refcount table) first when none covers it.
    func setRefcount(ofCluster index: UInt64, to value: UInt64) throws(Qcow2Error) {
        guard value <= maximumRefcount else { throw markCorrupt("refcount of cluster \(index) would overflow") }
        let blockOffset = try refcountBlockOffset(covering: index)
        let block = try refcountBlock(at: blockOffset)
        let changed = setRefcountEntry(block, Int(index % UInt64(geometry.refcountBlockEntries)), value)
        try writeThrough(block, at: blockOffset, changed: changed.start, count: changed.count)
    }

    /// Allocates one host cluster at the end of the image: its refcount is 1 on disk when this
    /// returns, before anything points to it. Returns its offset.
    func allocateCluster() throws(Qcow2Error) -> UInt64 {
        let index = nextFreeCluster
        let offset = try clusterOffset(index)
        nextFreeCluster += 1
        try setRefcount(ofCluster: index, to: 1)
        return offset
    }

    /// The file offset of cluster `index`, which tables can name (below 2^56): a refcount
    /// table claiming clusters past that cannot make an offset wrap around to the header.
    func clusterOffset(_ index: UInt64) throws(Qcow2Error) -> UInt64 {
        guard index < (ClusterGeometry.offsetMask >> UInt64(geometry.clusterBits)) else {
            throw .io(path: path, call: "allocate", errno: EFBIG)
        }
        return index << UInt64(geometry.clusterBits)
    }

    /// Drops one reference to each cluster in `clusters`; a cluster no longer used is given back
    /// to the file system (punched). Called after whatever pointed to them was rewritten.
    func release(_ clusters: ClosedRange<UInt64>) throws(Qcow2Error) {
        for index in clusters {
            let count = try refcount(ofCluster: index)
            guard count > 0 else { throw markCorrupt("cluster \(index) is referenced but its refcount is 0") }
            try setRefcount(ofCluster: index, to: count - 1)
            if count == 1 {
                _ = file.descriptor.punchHole(offset: index << UInt64(geometry.clusterBits), length: geometry.clusterSize64)
            }
        }
        forgetDecompressed()
    }

    /// The offset of the refcount block covering cluster `index`, made (and the refcount table
    /// grown) when there is none.
    func refcountBlockOffset(covering index: UInt64) throws(Qcow2Error) -> UInt64 {
        let entries = UInt64(geometry.refcountBlockEntries)
        let tableIndex = index / entries
        if tableIndex >= UInt64(refcountTableEntries) { try growRefcountTable(covering: tableIndex) }
        let existing = refcountTable.base.bigEndianUInt64(at: Int(tableIndex) * 8) & ClusterGeometry.offsetMask
        if existing != 0 { return existing }
        // A new block at the next free cluster, counting itself when it covers itself; written
        // whole before the table points to it.
        let blockIndex = nextFreeCluster
        let blockOffset = try clusterOffset(blockIndex)
        nextFreeCluster += 1
        let block = refcountCache.insert(blockOffset)
        block.zero()
        if blockIndex / entries == tableIndex { _ = setRefcountEntry(block, Int(blockIndex % entries), 1) }
        do {
            try file.write(UnsafeRawBufferPointer(block.bytes), at: blockOffset)
        } catch {
            refcountCache.remove(blockOffset)
            throw error
        }
        fileSize = max(fileSize, blockOffset + geometry.clusterSize64)
        metadataClusters.insert(blockIndex)
        refcountTable.base.storeBigEndian(blockOffset, at: Int(tableIndex) * 8)
        try writeThrough(refcountTable, at: refcountTableOffset, changed: Int(tableIndex) * 8, count: 8)
        if blockIndex / entries != tableIndex { try setRefcount(ofCluster: blockIndex, to: 1) }
        return blockOffset
    }

    /// Replaces the refcount table by one at least twice as large, at the end of the image:
    /// written whole and synchronised before the header points to it; the old one freed after.
    private func growRefcountTable(covering tableIndex: UInt64) throws(Qcow2Error) {
        let entriesPerCluster = UInt64(geometry.clusterSize / 8)
        // Room for the new table's own refcount blocks too.
        let wanted = max(tableIndex + 2, UInt64(refcountTableEntries) * 2)
        let clusters = (wanted + entriesPerCluster - 1) / entriesPerCluster
        guard clusters <= Qcow2Header.maximumRefcountTableBytes >> UInt64(geometry.clusterBits) else {
            throw .unsupported(path: path, feature: "an image that needs a refcount table over 8 MiB")
        }
        let old = (table: refcountTable, offset: refcountTableOffset, clusters: refcountTableClusters)
        let newTable = AlignedBuffer(byteCount: Int(clusters) << Int(geometry.clusterBits))
        newTable.base.copyMemory(from: old.table.base, byteCount: old.table.count)
        let first = nextFreeCluster
        let tableOffset = try clusterOffset(first + clusters)
        nextFreeCluster += clusters
        refcountTable = newTable
        refcountTableOffset = tableOffset - (clusters << UInt64(geometry.clusterBits))
        refcountTableClusters = clusters
        do {
            for index in first..<(first + clusters) {
                metadataClusters.insert(index)
                try setRefcount(ofCluster: index, to: 1)
            }
            try file.write(UnsafeRawBufferPointer(newTable.bytes), at: refcountTableOffset)
            fileSize = max(fileSize, refcountTableOffset + UInt64(newTable.count))
            try synchronize()
            try updateHeader(at: Qcow2Header.refcountTableFieldOffset,
                             bigEndianBytes(refcountTableOffset) + bigEndianBytes(UInt32(clusters)))
        } catch {
            // Nothing on disk points to the new table: the image is as it was (with leaks).
            refcountTable = old.table
            refcountTableOffset = old.offset
            refcountTableClusters = old.clusters
            throw error
        }
        let oldFirst = geometry.clusterIndex(old.offset)
        for index in oldFirst..<(oldFirst + old.clusters) {
            metadataClusters.remove(index)
            try release(index...index)
        }
        logger.info("qcow2 refcount table grown", metadata: ["image": "\(path)", "clusters": "\(clusters)"])
    }

    /// fdatasync of the image file.
    func synchronize() throws(Qcow2Error) {
        while fdatasync(file.rawValue) != 0 {
            guard errno == EINTR else { throw .io(path: path, call: "fdatasync", errno: errno) }
        }
    }
}
