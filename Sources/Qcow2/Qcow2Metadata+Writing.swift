#if canImport(Glibc)
import Glibc
#endif

/// Writes, zeroing and discarding, in the order that keeps the image consistent if the daemon
/// dies between any two steps (a kill -9 leaves at worst leaked clusters, which `qemu-img
/// check` reports and `-r leaks` repairs):
///
/// 1. a new cluster's refcount is written (new refcount blocks whole, before the table points
///    to them);
/// 2. the cluster's contents are written (a new L2 table zeroed; data with what it replaces);
/// 3. the L1 or L2 entry pointing to it is written;
/// 4. only then is a replaced cluster's refcount dropped.
///
/// Each write-through happens while the image's lock is held, so two writes to one unallocated
/// cluster cannot both allocate it; an allocation an asynchronous write has in flight is
/// settled first (`settleAllocationInFlight`).
extension Qcow2Metadata {
    /// The L2 table mapping guest `offset`, made when there is none: (table, its file offset,
    /// the entry's index).
    func l2TableForWriting(_ offset: UInt64) throws(Qcow2Error) -> (table: AlignedBuffer, at: UInt64, index: Int) {
        let l1Index = Int(geometry.l1Index(offset))
        guard l1Index < l1Entries else { throw corrupt("guest offset 0x\(String(offset, radix: 16)) is past the L1 table") }
        let entry = l1.base.bigEndianUInt64(at: l1Index * 8)
        let existing = entry & ClusterGeometry.offsetMask
        if existing != 0 {
            guard entry & ClusterMapping.copiedFlag != 0 else {
                throw .unsupported(path: path, feature: "writing an L2 table shared with a snapshot (L1 entry \(l1Index))")
            }
            return (try l2Table(at: existing), existing, geometry.l2Index(offset))
        }
        let tableOffset = try allocateCluster()
        let table = l2Cache.insert(tableOffset)
        table.zero()
        do {
            try file.write(UnsafeRawBufferPointer(table.bytes), at: tableOffset)
        } catch {
            l2Cache.remove(tableOffset)
            throw error
        }
        fileSize = max(fileSize, tableOffset + geometry.clusterSize64)
        validatedL2.insert(tableOffset)
        metadataClusters.insert(geometry.clusterIndex(tableOffset))
        l1.base.storeBigEndian(tableOffset | ClusterMapping.copiedFlag, at: l1Index * 8)
        try writeThrough(l1, at: l1Offset, changed: l1Index * 8, count: 8)
        return (table, tableOffset, geometry.l2Index(offset))
    }

    /// Replaces the L2 entry of guest cluster `offset` (through the table just looked up).
    func setL2Entry(_ value: UInt64, at tableOffset: UInt64, index: Int) throws(Qcow2Error) {
        // The table may have been evicted while clusters were allocated: look it up again.
        let current = try l2Table(at: tableOffset)
        current.base.storeBigEndian(value, at: index * geometry.l2EntrySize)
        try writeThrough(current, at: tableOffset, changed: index * geometry.l2EntrySize, count: 8)
    }

    /// Writes `length` bytes of `source` at guest `offset`, allocating and copying on write as
    /// needed. `readBelow` fills a buffer with what the layers under this image hold at a guest
    /// offset (zeroes without a backing file).
    func write(_ source: WriteSource, offset: UInt64, length: Int,
               readBelow: (UInt64, UnsafeMutableRawBufferPointer) throws(Qcow2Error) -> Void) throws(Qcow2Error) {
        guard !readOnly else { throw .io(path: path, call: "write", errno: EROFS) }
        if let corruption { throw corrupt(corruption) }
        for piece in ClusterPieces(geometry, offset: offset, length: length) {
            let (guestCluster, inCluster, done) = (piece.guestCluster, piece.inCluster, piece.done)
            try settleAllocationInFlight(guestCluster)
            let (table, tableOffset, index) = try l2TableForWriting(guestCluster)
            let entry = UnsafeRawPointer(table.base).bigEndianUInt64(at: index * geometry.l2EntrySize)
            guard let mapping = ClusterMapping.decode(entry, geometry: geometry, version: version) else {
                throw markCorrupt("L2 entry 0x\(String(entry, radix: 16)) is invalid")
            }
            if case .data(let host, copied: true) = mapping {
                try writeInPlace(source, skipping: done, length: piece.length, at: host + UInt64(inCluster))
            } else {
                try copyOnWrite(source, skipping: done, length: piece.length, inCluster: inCluster, guestCluster: guestCluster,
                                replacing: mapping, entry: entry, tableOffset: tableOffset, index: index,
                                readBelow: readBelow)
            }
        }
    }

    private func writeInPlace(_ source: WriteSource, skipping: Int, length: Int, at host: UInt64) throws(Qcow2Error) {
        let result: Int32
        switch source {
        case .vectors(let vectors, let count):
            result = withUnsafeTemporaryAllocation(of: iovec.self, capacity: max(count, 1)) { slice in
                guard let used = IOVectors.slice(vectors, count: count, skipping: skipping, length: length, into: slice) else { return EINVAL }
                return file.transferData(slice.baseAddress.unsafelyUnwrapped, count: used, offset: host, length: length, write: true)
            }
        case .zeroes:
            let zeroes = AlignedBuffer(byteCount: length)
            var vector = iovec(iov_base: zeroes.base, iov_len: length)
            result = file.transferData(&vector, count: 1, offset: host, length: length, write: true)
        }
        guard result == 0 else { throw .io(path: path, call: "pwrite", errno: result) }
        fileSize = max(fileSize, host + UInt64(length))
    }

    /// A cluster that cannot be written in place: its whole new contents staged (what it held,
    /// then the new bytes), written to a new cluster (or its preallocated one), then the entry.
    private func copyOnWrite(_ source: WriteSource, skipping: Int, length: Int, inCluster: Int, guestCluster: UInt64,
                             replacing mapping: ClusterMapping, entry: UInt64, tableOffset: UInt64,
                             index: Int, readBelow: (UInt64, UnsafeMutableRawBufferPointer) throws(Qcow2Error) -> Void)
        throws(Qcow2Error) {
        // A new cluster of a regular file was never written (allocation only moves forward
        // and nothing is reused), so it reads as zeroes already: when the old contents are
        // zeroes too, only the new bytes (to the file's alignment) are written.
        let oldIsZero: Bool
        switch mapping {
        case .zero: oldIsZero = true
        case .unallocated: oldIsZero = !hasBacking
        case .data, .compressed: oldIsZero = false
        }
        if oldIsZero, file.isRegularFile, !mapping.hasPreallocatedCopiedCluster(entry) {
            let alignment = file.alignment
            let start = inCluster / alignment * alignment
            let end = min(geometry.clusterSize, (inCluster + length + alignment - 1) / alignment * alignment)
            let staging = self.staging
            staging.base.initializeMemory(as: UInt8.self, repeating: 0, count: end - start)
            source.copy(skipping: skipping, length: length, into: staging.base + (inCluster - start))
            let target = try allocateCluster()
            try file.write(UnsafeRawBufferPointer(start: staging.base, count: end - start), at: target + UInt64(start))
            if fileSize < target + geometry.clusterSize64 {
                try file.extend(to: target + geometry.clusterSize64)
                fileSize = target + geometry.clusterSize64
            }
            try setL2Entry(target | ClusterMapping.copiedFlag, at: tableOffset, index: index)
            if let replaced = mapping.referencedClusters(geometry: geometry) { try release(replaced) }
            return
        }
        let staging = self.staging
        if length < geometry.clusterSize {
            switch mapping {
            case .unallocated:
                if hasBacking { try readBelow(guestCluster, staging.bytes) } else { staging.zero() }
            case .zero:
                staging.zero()
            case .data(let host, _):
                try file.read(into: staging.bytes, at: host)
            case .compressed(let host, let byteCount):
                let cluster = try decompressedCluster(host: host, byteCount: byteCount)
                staging.base.copyMemory(from: cluster.base, byteCount: geometry.clusterSize)
            }
        }
        source.copy(skipping: skipping, length: length, into: staging.base + inCluster)
        // A zero cluster keeps its preallocated cluster when nobody else uses it.
        let target: UInt64
        let replaced: ClosedRange<UInt64>?
        if case .zero(preallocated: let host?) = mapping, entry & ClusterMapping.copiedFlag != 0 {
            target = host
            replaced = nil
        } else {
            target = try allocateCluster()
            replaced = mapping.referencedClusters(geometry: geometry)
        }
        // A standard cluster without the copied flag claims others share it (refcount 2 or
        // more): dropping our reference must not free it for them.
        if case .data(let host, copied: false) = mapping, try refcount(ofCluster: geometry.clusterIndex(host)) < 2 {
            throw markCorrupt("cluster at 0x\(String(host, radix: 16)) is shared (no copied flag) but its refcount is below 2")
        }
        try file.write(UnsafeRawBufferPointer(staging.bytes), at: target)
        fileSize = max(fileSize, target + geometry.clusterSize64)
        try setL2Entry(target | ClusterMapping.copiedFlag, at: tableOffset, index: index)
        if let replaced { try release(replaced) }
    }

    /// Makes whole guest clusters from `offset` (`count` of them) read as zeroes, through the
    /// zero flag (version 3) or by unallocating them where nothing lies below. With `unmap`,
    /// or when `deallocate`, their host clusters are freed; otherwise an allocated cluster is
    /// kept as a preallocated zero cluster. False when the format cannot express it here (the
    /// caller writes zeroes instead).
    func zeroClusters(at offset: UInt64, count: Int, deallocate: Bool) throws(Qcow2Error) -> Bool {
        guard !readOnly else { throw .io(path: path, call: "write", errno: EROFS) }
        if let corruption { throw corrupt(corruption) }
        // Without a backing file an unallocated cluster reads as zeroes; with one, only the zero
        // flag hides it, which version 2 and extended L2 entries do not have here.
        guard !hasBacking || (version >= 3 && !geometry.extendedL2) else { return false }
        guard !geometry.extendedL2 else { return false }
        for cluster in 0..<count {
            let guestCluster = offset + UInt64(cluster) * geometry.clusterSize64
            let l1Index = Int(geometry.l1Index(guestCluster))
            let l1Entry = l1.base.bigEndianUInt64(at: l1Index * 8)
            if l1Entry & ClusterGeometry.offsetMask == 0, !hasBacking { continue }  // already reads as zeroes
            try settleAllocationInFlight(guestCluster)
            let (table, tableOffset, index) = try l2TableForWriting(guestCluster)
            let entry = UnsafeRawPointer(table.base).bigEndianUInt64(at: index * geometry.l2EntrySize)
            guard let mapping = ClusterMapping.decode(entry, geometry: geometry, version: version) else {
                throw markCorrupt("L2 entry 0x\(String(entry, radix: 16)) is invalid")
            }
            var newEntry: UInt64 = version >= 3 ? ClusterMapping.zeroFlag : 0
            var replaced = mapping.referencedClusters(geometry: geometry)
            if !deallocate, version >= 3, case .data(let host, copied: true) = mapping {
                newEntry = host | ClusterMapping.copiedFlag | ClusterMapping.zeroFlag
                replaced = nil
            } else if !deallocate, version >= 3, case .zero(preallocated: let host?) = mapping {
                newEntry = host | (entry & ClusterMapping.copiedFlag) | ClusterMapping.zeroFlag
                replaced = nil
            }
            if newEntry == entry { continue }
            try setL2Entry(newEntry, at: tableOffset, index: index)
            if let replaced { try release(replaced) }
        }
        return true
    }
}
