#if canImport(Glibc)
import Glibc
#endif

/// L2 tables a request needs that are not cached: read through the engine before it is planned.
extension Qcow2Request {
    /// The L2 tables of the range not cached, each read into staging lent by the disk: the
    /// top image's for a write, every qcow2 layer's for a read. False when none is needed (or
    /// none can be read here: planning then loads them synchronously).
    func addLoads(offset: UInt64, length: Int) -> Bool {
        for layer in disk.layers {
            guard case .qcow2(let image) = layer, offset < image.virtualSize else { continue }
            missing.removeAll(keepingCapacity: true)
            let evictions = image.metadata.withLock { state -> UInt64 in
                state.uncachedL2Tables(offset: offset, length: Int(min(UInt64(length), image.virtualSize - offset)), into: &missing,
                                       limit: Self.maximumLoads - loads.count)
                return state.l2Cache.evictions
            }
            let clusterSize = image.header.geometry.clusterSize
            for table in missing {
                guard transferCount < Self.transferCapacity, scratchUsed < Self.vectorCapacity,
                      let staging = disk.borrowStaging() else { break }
                loads.append(TableLoad(image: image, offset: table, evictions: evictions, staging: staging))
                scratch[scratchUsed] = iovec(iov_base: staging.input.base, iov_len: clusterSize)
                transfers[transferCount] = Qcow2Transfer(direction: .read, descriptor: image.file.rawValue,
                                                         vectors: scratch + scratchUsed, count: 1, offset: table, length: clusterSize)
                roles[transferCount] = loads.count - 1
                transferCount += 1
                scratchUsed += 1
                tablesLoaded += 1
            }
            if operation == .write { break }
        }
        return !loads.isEmpty
    }

    /// The tables are in: cached (unless a table left the cache meanwhile), and the request
    /// planned again; one that still cannot go through the engine is served here, synchronously.
    func installLoads() -> Progress {
        for load in loads where !load.failed {
            // A table that does not validate is found again by the planning, which reports it.
            try? load.image.metadata.withLock { (state) throws(Qcow2Error) in
                try state.installL2Table(at: load.offset, from: load.staging.input.base, evictionsAtRead: load.evictions)
            }
            disk.giveBack(load.staging)
        }
        for load in loads where load.failed { disk.giveBack(load.staging) }
        loads.removeAll(keepingCapacity: true)
        (failure, transferCount, scratchUsed, phase) = (0, 0, 0, .idle)
        loadRounds += 1
        let saved = (operation, arguments)
        if let next = loadOrPlan() { return next }
        guard let arguments = saved.1 else { return .finished(errno: EIO) }
        let error = saved.0 == .write
            ? disk.write(arguments.vectors, count: arguments.count, offset: arguments.offset, length: arguments.length)
            : disk.read(arguments.vectors, count: arguments.count, offset: arguments.offset, length: arguments.length)
        reset()
        return .finished(errno: error)
    }
}
