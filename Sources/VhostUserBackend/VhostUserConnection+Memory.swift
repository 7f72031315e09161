import VhostSystem
import VhostUserProtocol
import VirtioCore

extension VhostUserConnection {
    /// SET_MEM_TABLE: maps every region from its descriptor and replaces the whole table.
    func setMemoryTable(_ table: MemoryTableDescription, descriptors: [OwnedFileDescriptor]) throws(BackendError) {
        try checkMappedBytes(table.regions.map(\.size), request: .setMemTable)
        var regions: [GuestMemoryRegion] = []
        for (description, descriptor) in zip(table.regions, descriptors) {
            regions.append(try map(description, descriptor: descriptor))
        }
        let replacement: GuestMemory
        do {
            replacement = try GuestMemory(regions: regions, maximumRegions: limits.memoryRegions)
        } catch {
            throw .memoryTable(error)
        }
        try install(replacement)
    }

    /// ADD_MEM_REG: maps one more region into the table.
    func addMemoryRegion(_ single: SingleMemoryRegion, descriptors: [OwnedFileDescriptor]) throws(BackendError) {
        guard let descriptor = descriptors.first else {
            throw .invalidState(request: .addMemReg, reason: "no file descriptor attached")
        }
        try checkMappedBytes(memory.regions.map(\.size) + [single.region.size], request: .addMemReg)
        let region = try map(single.region, descriptor: descriptor)
        do {
            try install(try memory.adding(region))
        } catch let error as MemoryError {
            throw .memoryTable(error)
        } catch let error as BackendError {
            throw error
        } catch {
            throw .invalidState(request: .addMemReg, reason: "\(error)")
        }
    }

    /// REM_MEM_REG: the region matching guest address, user address and size leaves the table.
    /// Its mapping goes away only when no worker uses it any more (`install` waits for them).
    func removeMemoryRegion(_ single: SingleMemoryRegion) throws(BackendError) {
        let region = single.region
        let replacement: GuestMemory
        do {
            replacement = try memory.removing(
                guestPhysicalStart: GuestPhysicalAddress(rawValue: region.guestPhysicalAddress),
                frontEndVirtualStart: FrontEndVirtualAddress(rawValue: region.userAddress),
                size: region.size)
        } catch {
            throw .memoryTable(error)
        }
        try install(replacement)
    }

    /// Regions of these sizes together stay within `limits.mappedBytes` (checked before
    /// anything is mapped).
    private func checkMappedBytes(_ sizes: [UInt64], request: VhostUserRequest) throws(BackendError) {
        var total: UInt64 = 0
        for size in sizes {
            let (sum, overflow) = total.addingReportingOverflow(size)
            guard !overflow else { throw .limitExceeded(request: request, resource: "mapped bytes", limit: limits.mappedBytes, requested: .max) }
            total = sum
        }
        if total > limits.mappedBytes {
            throw .limitExceeded(request: request, resource: "mapped bytes", limit: limits.mappedBytes, requested: total)
        }
    }

    private func map(_ description: MemoryRegionDescription, descriptor: OwnedFileDescriptor) throws(BackendError) -> GuestMemoryRegion {
        do {
            return try GuestMemoryRegion.map(
                descriptor: descriptor,
                guestPhysicalStart: GuestPhysicalAddress(rawValue: description.guestPhysicalAddress),
                frontEndVirtualStart: FrontEndVirtualAddress(rawValue: description.userAddress),
                size: description.size,
                mmapOffset: description.mmapOffset)
        } catch {
            throw .memoryTable(error)
        }
    }

    /// Makes `replacement` the table and waits until every running worker has switched to it, so
    /// the caller's reply tells the front end the old regions are no longer touched.
    private func install(_ replacement: GuestMemory) throws(BackendError) {
        memory = replacement
        var pending: [(Int, CommandCompletion)] = []
        for (index, worker) in workers.enumerated() {
            guard let worker else { continue }
            let completion = CommandCompletion()
            worker.mailbox.post(.setMemory(replacement, completion))
            pending.append((index, completion))
        }
        for (index, completion) in pending where completion.wait(milliseconds: Self.workerTimeoutMilliseconds) == nil {
            throw .workerUnresponsive(queue: index)
        }
    }
}
