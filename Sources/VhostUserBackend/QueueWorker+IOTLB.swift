import IOMMUModel
import Logging
import VhostSystem
import VirtioCore
import VirtioSpec

/// ACCESS_PLATFORM: ring addresses and descriptor addresses are IOVAs.
extension QueueWorker {
    /// The epoll timeout while idle: until the pending miss expires, or forever.
    func missWaitMilliseconds() -> Int32 {
        guard let pendingMiss else { return -1 }
        let now = MonotonicDeadline.now()
        guard pendingMiss.deadline.nanoseconds > now else { return 0 }
        return Int32(clamping: (pendingMiss.deadline.nanoseconds - now + 999_999) / 1_000_000)
    }

    /// Translates the ring addresses (IOVAs) through the IOTLB snapshot. Mapped: the ring is
    /// (re)built at the new host addresses, keeping its indices. Not (yet) mapped: the ring
    /// waits (`ringMapped` false, `missingRingIOVA` set) until an UPDATE maps it. A part
    /// contiguous in IOVA space but not in the front end's (the guest's IOMMU maps the pages
    /// of a ring larger than a page wherever it likes: Linux does for QEMU 10.0's 1024-entry
    /// rings) is seen through a contiguous view of its pages. A ring that breaks here is kept,
    /// stopped: its requests in flight still complete into it (and release their pins).
    func resolveIOVARing() {
        guard let translator, let configuration, !broken else { return }
        missingRingIOVA = nil
        let size = configuration.size
        let parts: [(VirtqueueError.Ring, UInt64, Int, IOMMUAccess)] = [
            (.descriptorTable, configuration.descriptorTable.rawValue, SplitRing.descriptorTableByteCount(queueSize: size), .read),
            (.availableRing, configuration.availableRing.rawValue, SplitRing.availableRingByteCount(queueSize: size), .read),
            (.usedRing, configuration.usedRing.rawValue, SplitRing.usedRingByteCount(queueSize: size), .write),
        ]
        var pointers: [UnsafeMutableRawPointer] = []
        var views: [MemoryMapping] = []
        for (part, iova, length, access) in parts {
            switch translator.ringAddress(iova, length: length, access: access) {
            case .mapped(let user):
                guard let host = memory.pointer(user, length: length) else {
                    ringMapped = false
                    markBroken(.ringNotInGuestMemory(part, address: iova, length: length))
                    return
                }
                pointers.append(host)
            case .missing(let missing):
                ringMapped = false
                missingRingIOVA = (missing, access)
                return
            case .scattered(let pages):
                guard let view = ringViews[part].flatMap({ $0.pages == pages ? $0.view : nil }) ?? scatteredRingView(pages) else {
                    ringMapped = false
                    markBroken(.ringNotInGuestMemory(part, address: iova, length: length))
                    return
                }
                views.append(view)
                ringViews[part] = (pages, view)
                pointers.append(view.base + Int(iova % UInt64(MemoryMapping.pageSize)))
            }
        }
        do {
            let layout = try SplitQueue.Layout(queueSize: size, descriptorTable: pointers[0], availableRing: pointers[1],
                                               usedRing: pointers[2], memory: memory, views: views)
            if var current = ring {
                try current.relocate(to: layout)
                ring = current
            } else {
                ring = SplitQueue(layout: layout,
                                  features: SplitQueue.Features(negotiated: configuration.features),
                                  nextAvailableIndex: configuration.nextAvailableIndex,
                                  maximumChainLength: device.maximumChainLength)
                attachInflight(configuration)
            }
            ringMapped = true
        } catch {
            ringMapped = false
            markBroken(error)
        }
    }

    /// A contiguous view of the pages a scattered ring part lies on, each page where the
    /// IOTLB and the memory table put it; nil when a page is outside guest memory or not
    /// page-aligned there (the front end's mapping is then unusable as a ring).
    func scatteredRingView(_ pages: [IOTLBSegment]) -> MemoryMapping? {
        guard !pages.isEmpty else { return nil }
        var pieces: [MemoryMapping.AliasedPiece] = []
        var offset = 0
        for page in pages {
            guard let pieceLength = Int(exactly: page.length),
                  let host = memory.pointer(FrontEndVirtualAddress(rawValue: page.userAddress), length: pieceLength)
            else { return nil }
            pieces.append(MemoryMapping.AliasedPiece(source: host, offset: offset, length: pieceLength))
            offset += pieceLength
        }
        do {
            return try MemoryMapping(aliasing: pieces, length: offset)
        } catch {
            logger.error("cannot map a contiguous view of a scattered ring", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Sends a MISS for `iova` unless the queue already waits for that one; keeps the first
    /// deadline, so a request whose buffers miss one after the other is still bounded.
    /// - Returns: false once the pending miss has expired (the caller gives up).
    func stall(onMiss iova: UInt64, access: IOMMUAccess) -> Bool {
        if var pending = pendingMiss {
            if pending.deadline.hasPassed { return false }
            if pending.iova != iova || pending.access != access {
                pending.iova = iova
                pending.access = access
                pendingMiss = pending
                backendChannel?.sendMiss(iova: iova, access: access)
            }
            return true
        }
        pendingMiss = PendingMiss(iova: iova, access: access,
                                  deadline: MonotonicDeadline(millisecondsFromNow: Self.missTimeoutMilliseconds))
        backendChannel?.sendMiss(iova: iova, access: access)
        return true
    }

    /// A new IOTLB snapshot from the control plane.
    func replaceIOTLB(_ iotlb: IOPageTableMirror) {
        guard let translator else { return }
        translator.replace(iotlb: iotlb)
        // The pending miss is answered once its IOVA is mapped: forget it, so that if the guest
        // unmaps that IOVA again later (lazy flushes do, rings included) the next miss there
        // sends a new MISS with a new deadline. Keeping it made the queue wait silently on a
        // stale deadline and stop.
        let stalled = pendingMiss != nil
        if let pending = pendingMiss,
           case .mapped = translator.ringAddress(pending.iova, length: 1, access: pending.access) {
            pendingMiss = nil
        }
        let wasMapped = ringMapped
        resolveIOVARing()
        // A stalled queue retries at once; a ring that just got mapped serves what waits.
        if stalled || (ringMapped && !wasMapped) { workPending = true }
    }

    /// Whether the ring can be served now; if its addresses miss, sends the MISS once the driver
    /// kicked, or stops the ring when that miss expired.
    func iovaRingReady() -> Bool {
        backendChannel?.pollAcks()
        if ringMapped { return true }
        guard kicked, let (iova, access) = missingRingIOVA else { return false }
        if !stall(onMiss: iova, access: access) {
            pendingMiss = nil
            markBroken(.ringNotInGuestMemory(.descriptorTable, address: iova, length: 1))
        }
        return false
    }

    /// What to do about a request whose walk the IOVA translator deferred: wait for the UPDATE
    /// answering a miss, or fail the request (a permission fault, a miss not answered in time).
    func deferral() -> Deferral {
        switch translator?.fault {
        case .miss(let iova, let access)?:
            if stall(onMiss: iova, access: access) { return .wait }
            logger.error("IOTLB miss not answered in time; request fails",
                         metadata: ["iova": "0x\(String(iova, radix: 16))"])
            pendingMiss = nil
            return .fail
        case .permission(let iova, let needed)?:
            logger.error("IOMMU permission fault; request fails without touching memory",
                         metadata: ["iova": "0x\(String(iova, radix: 16))", "access": "\(needed)"])
            return .fail
        case nil:
            // Only the IOVA translator defers; anything else is a walk that cannot go on.
            return .fail
        }
    }

    enum Deferral {
        case wait
        case fail
    }
}
