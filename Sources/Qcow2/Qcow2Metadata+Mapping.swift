/// Guest offset to host: L1 entry, L2 table (loaded through the cache and checked on first
/// load), L2 entry; runs of clusters alike are joined into one extent.
extension Qcow2Metadata {
    /// The L2 table at `offset`, loaded and checked if not cached.
    func l2Table(at offset: UInt64) throws(Qcow2Error) -> AlignedBuffer {
        if let table = l2Cache.lookup(offset) { return table }
        let table = l2Cache.insert(offset)
        do {
            try file.read(into: table.bytes, at: offset)
            if !validatedL2.contains(offset) {
                try validateL2(table, at: offset)
                validatedL2.insert(offset)
            }
        } catch {
            l2Cache.remove(offset)
            throw error
        }
        return table
    }

    /// The offsets of L2 tables that map part of `length` bytes at guest `offset` and are in
    /// the file but not cached, appended to `tables` (at most `limit` in all).
    func uncachedL2Tables(offset: UInt64, length: Int, into tables: inout [UInt64], limit: Int) {
        guard length > 0 else { return }
        let first = geometry.l1Index(offset)
        let last = geometry.l1Index(offset + UInt64(length) - 1)
        for l1Index in first...last where Int(l1Index) < l1Entries && tables.count < limit {
            let table = l1.base.bigEndianUInt64(at: Int(l1Index) * 8) & ClusterGeometry.offsetMask
            if table != 0, l2Cache.lookup(table) == nil, !tables.contains(table) { tables.append(table) }
        }
    }

    /// Puts an L2 table a request read from the file (`geometry.clusterSize` bytes) in the
    /// cache, checked as a table loaded here would be. Nothing is done when it is cached
    /// already, or when a table left the cache since the read began (`evictionsAtRead`): it may
    /// have been changed and written meanwhile, so the bytes read may be old.
    func installL2Table(at offset: UInt64, from bytes: UnsafeRawPointer, evictionsAtRead: UInt64) throws(Qcow2Error) {
        guard l2Cache.lookup(offset) == nil, l2Cache.evictions == evictionsAtRead else { return }
        let table = l2Cache.insert(offset)
        table.base.copyMemory(from: bytes, byteCount: geometry.clusterSize)
        guard !validatedL2.contains(offset) else { return }
        do {
            try validateL2(table, at: offset)
        } catch {
            l2Cache.remove(offset)
            throw error
        }
        validatedL2.insert(offset)
    }

    /// Every entry of a table read from the file: decodable, and its clusters inside the file as
    /// opened and outside the metadata.
    private func validateL2(_ table: AlignedBuffer, at offset: UInt64) throws(Qcow2Error) {
        let limit = geometry.clusters(forBytes: validationLimit)
        for index in 0..<geometry.l2Entries {
            let entry = UnsafeRawPointer(table.base).bigEndianUInt64(at: index * geometry.l2EntrySize)
            guard let mapping = ClusterMapping.decode(entry, geometry: geometry, version: version) else {
                throw markCorrupt("L2 table at 0x\(String(offset, radix: 16)), entry \(index): invalid entry 0x\(String(entry, radix: 16))")
            }
            if geometry.extendedL2 {
                let bitmap = UnsafeRawPointer(table.base).bigEndianUInt64(at: index * 16 + 8)
                try validateBitmap(bitmap, mapping: mapping, table: offset, index: index)
            }
            if case .compressed(_, let byteCount) = mapping, byteCount > geometry.clusterSize + 512 {
                throw markCorrupt("L2 table at 0x\(String(offset, radix: 16)), entry \(index): compressed data larger than a cluster")
            }
            guard let clusters = mapping.referencedClusters(geometry: geometry) else { continue }
            guard clusters.upperBound < limit else {
                throw markCorrupt("L2 table at 0x\(String(offset, radix: 16)), entry \(index): cluster past the end of the file")
            }
            if case .compressed = mapping {
                // Compressed data is only read; it may not sit in tables either.
                guard !metadataClusters.contains(clusters.lowerBound), !metadataClusters.contains(clusters.upperBound) else {
                    throw markCorrupt("L2 table at 0x\(String(offset, radix: 16)), entry \(index): compressed data overlaps metadata")
                }
            } else if metadataClusters.contains(clusters.lowerBound) {
                throw markCorrupt("L2 table at 0x\(String(offset, radix: 16)), entry \(index): data cluster overlaps metadata")
            }
        }
    }

    private func validateBitmap(_ bitmap: UInt64, mapping: ClusterMapping, table: UInt64, index: Int) throws(Qcow2Error) {
        let allocated = bitmap & 0xffff_ffff
        let zeroes = bitmap >> 32
        switch mapping {
        case .compressed:
            guard bitmap == 0 else { throw markCorrupt("L2 table at 0x\(String(table, radix: 16)), entry \(index): bitmap of a compressed cluster") }
        case .unallocated, .zero(preallocated: nil):
            guard allocated == 0, allocated & zeroes == 0 else {
                throw markCorrupt("L2 table at 0x\(String(table, radix: 16)), entry \(index): allocated subclusters without a host cluster")
            }
        case .data, .zero:
            guard allocated & zeroes == 0 else {
                throw markCorrupt("L2 table at 0x\(String(table, radix: 16)), entry \(index): subclusters both allocated and zero")
            }
        }
    }

    /// The extent at guest `offset`, at most `maximum` bytes (> 0, inside the virtual disk).
    func extent(at offset: UInt64, maximum: Int) throws(Qcow2Error) -> LayerExtent {
        let first = try clusterExtent(at: offset, maximum: maximum)
        var result = first
        // Join the following clusters while they continue the run.
        while result.length < maximum {
            let next = offset + UInt64(result.length)
            guard geometry.offsetInCluster(next) == 0 else { break }
            let more = try clusterExtent(at: next, maximum: maximum - result.length)
            switch (result.kind, more.kind) {
            case (.zeroes, .zeroes), (.unallocated, .unallocated):
                result.length += more.length
            case (.data(let host, let writable), .data(let nextHost, let nextWritable))
                where nextHost == host + UInt64(result.length) && writable == nextWritable:
                result.length += more.length
            default:
                return result
            }
        }
        return result
    }

    /// The extent at `offset` within its cluster.
    private func clusterExtent(at offset: UInt64, maximum: Int) throws(Qcow2Error) -> LayerExtent {
        let inCluster = geometry.offsetInCluster(offset)
        let run = min(maximum, geometry.clusterSize - inCluster)
        let l1Index = Int(geometry.l1Index(offset))
        guard l1Index < l1Entries else { return LayerExtent(kind: .unallocated, length: run) }
        let tableOffset = l1.base.bigEndianUInt64(at: l1Index * 8) & ClusterGeometry.offsetMask
        guard tableOffset != 0 else { return LayerExtent(kind: .unallocated, length: run) }
        let table = try l2Table(at: tableOffset)
        let index = geometry.l2Index(offset)
        let entry = UnsafeRawPointer(table.base).bigEndianUInt64(at: index * geometry.l2EntrySize)
        // Checked when the table was loaded (or written here).
        guard let mapping = ClusterMapping.decode(entry, geometry: geometry, version: version) else {
            throw markCorrupt("L2 entry 0x\(String(entry, radix: 16)) changed into an invalid one")
        }
        if geometry.extendedL2, !mapping.isCompressed {
            let bitmap = UnsafeRawPointer(table.base).bigEndianUInt64(at: index * 16 + 8)
            return subclusterExtent(mapping, bitmap: bitmap, inCluster: inCluster, run: run)
        }
        switch mapping {
        case .unallocated: return LayerExtent(kind: .unallocated, length: run)
        case .zero: return LayerExtent(kind: .zeroes, length: run)
        case .data(let host, let copied):
            return LayerExtent(kind: .data(host: host + UInt64(inCluster), writable: copied), length: run)
        case .compressed(let host, let byteCount):
            return LayerExtent(kind: .compressed(host: host, byteCount: byteCount, offsetInCluster: inCluster), length: run)
        }
    }

    /// Extended L2 entries: the run of subclusters in the same state as the one at `inCluster`.
    private func subclusterExtent(_ mapping: ClusterMapping, bitmap: UInt64, inCluster: Int, run: Int) -> LayerExtent {
        let size = geometry.subclusterSize
        let first = inCluster / size
        func state(_ subcluster: Int) -> Int {
            if bitmap & (1 << UInt64(subcluster)) != 0 { return 1 }
            if bitmap & (1 << UInt64(32 + subcluster)) != 0 { return 2 }
            return 0
        }
        let kind = state(first)
        var end = (first + 1) * size
        while end - inCluster < run, end / size < ClusterGeometry.subclustersPerCluster, state(end / size) == kind { end += size }
        let length = min(run, end - inCluster)
        switch kind {
        case 1:
            // Allocated subclusters need a host cluster (checked at load).
            let host: UInt64
            switch mapping {
            case .data(let base, _), .zero(preallocated: let base?): host = base
            case .unallocated, .zero(preallocated: nil), .compressed: return LayerExtent(kind: .unallocated, length: length)
            }
            return LayerExtent(kind: .data(host: host + UInt64(inCluster), writable: false), length: length)
        case 2: return LayerExtent(kind: .zeroes, length: length)
        default: return LayerExtent(kind: .unallocated, length: length)
        }
    }
}
