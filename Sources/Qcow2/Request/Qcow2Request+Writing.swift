#if canImport(Glibc)
import Glibc
#endif

/// Writes in place and allocating writes: planned under the image's lock, then linked.
extension Qcow2Request {
    // MARK: Planning (under the image lock)

    /// The first pass: every piece writable in place or allocatable without a copy, aligned as
    /// the file needs, and few enough. Changes nothing but L2 tables loaded or made (as the
    /// synchronous path would make them).
    func canWriteAsynchronously(_ state: Qcow2Metadata, _ vectors: UnsafeMutablePointer<iovec>, count: Int,
                                        offset: UInt64, length: Int) -> Bool {
        let geometry = state.geometry
        var pieces = 0
        var vectorsNeeded = 0
        for piece in ClusterPieces(geometry, offset: offset, length: length) {
            pieces += 1
            guard pieces <= Self.maximumPieces else { return false }
            if state.inFlight[piece.guestCluster] == nil {
                guard let (table, _, index) = try? state.l2TableForWriting(piece.guestCluster) else { return false }
                let entry = UnsafeRawPointer(table.base).bigEndianUInt64(at: index * geometry.l2EntrySize)
                switch ClusterMapping.decode(entry, geometry: geometry, version: state.version) {
                case .data(_, copied: true)?, .zero(preallocated: nil)?: break
                case .unallocated? where !state.hasBacking: break
                default: return false
                }
            }
            // Within a host cluster only the offset in it matters for alignment.
            let free = UnsafeMutableBufferPointer(start: scratch, count: Self.vectorCapacity)
            guard let used = IOVectors.slice(vectors, count: count, skipping: piece.done, length: piece.length, into: free),
                  state.file.isAligned(scratch, count: used, offset: UInt64(piece.inCluster), length: piece.length) else { return false }
            vectorsNeeded += used
        }
        return vectorsNeeded + 2 * pieces <= Self.vectorCapacity
    }

    /// The second pass: allocations reserved (or joined), the data and refcount transfers built.
    func plan(_ state: Qcow2Metadata, _ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64,
                      length: Int) throws(Qcow2Error) {
        let geometry = state.geometry
        let file = state.file
        for piece in ClusterPieces(geometry, offset: offset, length: length) {
            let guestCluster = piece.guestCluster
            let (table, tableOffset, entryIndex) = try state.l2TableForWriting(guestCluster)
            let host: UInt64
            if var allocation = state.inFlight[guestCluster] {
                guard state.l2Cache.pin(tableOffset) else { throw state.corrupt("an L2 table left the cache while in use") }
                allocation.users += 1
                state.inFlight[guestCluster] = allocation
                host = allocation.host
                try addLink(state, guestCluster: guestCluster, host: host, table: tableOffset, entryIndex: entryIndex)
            } else {
                let entry = UnsafeRawPointer(table.base).bigEndianUInt64(at: entryIndex * geometry.l2EntrySize)
                if case .data(let existing, copied: true)? = ClusterMapping.decode(entry, geometry: geometry, version: state.version) {
                    host = existing
                } else {
                    guard state.l2Cache.pin(tableOffset) else { throw state.corrupt("an L2 table left the cache while in use") }
                    do {
                        host = try state.reserveCluster().host
                    } catch {
                        state.l2Cache.unpin(tableOffset)
                        throw error
                    }
                    state.inFlight[guestCluster] = InFlightAllocation(host: host)
                    try addLink(state, guestCluster: guestCluster, host: host, table: tableOffset, entryIndex: entryIndex)
                }
            }
            guard addTransfer(.write, file, at: host + UInt64(piece.inCluster), from: vectors, count: count, skipping: piece.done,
                              length: piece.length)
            else { throw .io(path: state.path, call: "write", errno: EINVAL) }  // checked in the first pass
        }
        for (index, write) in refcountWrites.enumerated() {
            guard let block = state.refcountCache.lookup(write.offset) else { throw state.corrupt("a pinned refcount block left the cache") }
            addMetadataTransfer(block, at: write.offset, bytes: state.alignedRange(write.bytes, within: block.count), role: index)
        }
    }

    /// Records that this write lands in `host` for `guestCluster`, whose allocation it was
    /// counted a user of and whose L2 table it pinned: its refcount bytes to write (the block
    /// pinned too). On a throw the link is recorded already, so `abandon` undoes it.
    func addLink(_ state: Qcow2Metadata, guestCluster: UInt64, host: UInt64, table: UInt64,
                         entryIndex: Int) throws(Qcow2Error) {
        links.append(Link(guestCluster: guestCluster, host: host, table: table, entryIndex: entryIndex, refcountWrite: -1))
        guard let location = state.refcountLocation(ofCluster: state.geometry.clusterIndex(host)) else {
            throw state.corrupt("no refcount block covers the cluster at 0x\(String(host, radix: 16)) being allocated")
        }
        let write: Int
        if let existing = refcountWrites.firstIndex(where: { $0.offset == location.block }) {
            refcountWrites[existing].include(location.bytes)
            write = existing
        } else {
            _ = try state.refcountBlock(at: location.block)
            guard state.refcountCache.pin(location.block) else { throw state.corrupt("a refcount block left the cache while in use") }
            refcountWrites.append(MetadataWrite(offset: location.block, bytes: location.bytes))
            write = refcountWrites.count - 1
        }
        links[links.count - 1].refcountWrite = write
    }

    // MARK: Linking

    /// Phase 2: the L2 entries of allocations whose refcount this request wrote, set (if no
    /// other write set them first) and written.
    func link() -> Progress {
        transferCount = 0
        scratchUsed = 0  // the data transfers are done: their iovecs are free
        disk.top.metadata.withLock { state in
            let entrySize = state.geometry.l2EntrySize
            for link in links {
                guard link.refcountWrite >= 0, !refcountWrites[link.refcountWrite].failed else { continue }
                guard var allocation = state.inFlight[link.guestCluster], allocation.host == link.host,
                      let table = state.l2Cache.lookup(link.table) else { continue }
                if !allocation.linked {
                    table.base.storeBigEndian(link.host | ClusterMapping.copiedFlag, at: link.entryIndex * entrySize)
                    allocation.linked = true
                    state.inFlight[link.guestCluster] = allocation
                }
                let bytes = (link.entryIndex * entrySize)..<(link.entryIndex * entrySize + 8)
                if let existing = l2Writes.firstIndex(where: { $0.offset == link.table }) {
                    l2Writes[existing].include(bytes)
                } else {
                    l2Writes.append(MetadataWrite(offset: link.table, bytes: bytes))
                }
            }
            for write in l2Writes {
                guard let table = state.l2Cache.lookup(write.offset) else { continue }
                addMetadataTransfer(table, at: write.offset, bytes: state.alignedRange(write.bytes, within: table.count), role: -1)
            }
        }
        return begin(.linking)
    }

    /// Leaves each allocation joined (the last user removes it: one never linked leaves its
    /// cluster leaked, as a crash would) and unpins the tables.
    func abandon(_ state: Qcow2Metadata) {
        for link in links {
            state.l2Cache.unpin(link.table)
            guard var allocation = state.inFlight[link.guestCluster], allocation.host == link.host else { continue }
            allocation.users -= 1
            state.inFlight[link.guestCluster] = allocation.users > 0 ? allocation : nil
        }
        for write in refcountWrites { state.refcountCache.unpin(write.offset) }
    }
}
