#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// The front end's side of a dirty log: a memfd the test maps too, read as QEMU reads it.
final class DirtyLogView {
    let descriptor: OwnedFileDescriptor
    let mapping: MemoryMapping
    let byteCount: Int

    /// A log covering `guestBytes` of guest memory, sized as QEMU sizes it (whole u64 chunks of
    /// 64 pages).
    init(coveringGuestBytes guestBytes: UInt64) throws {
        byteCount = Int((guestBytes / 4096 + 63) / 64 * 8)
        descriptor = try MemFD.create(name: "dirty-log", size: UInt64(byteCount))
        mapping = try MemoryMapping(descriptor: descriptor, offset: 0, length: UInt64(byteCount))
    }

    var description: LogDescription { LogDescription(mmapSize: UInt64(byteCount), mmapOffset: 0) }

    /// The pages whose bits are set, read with atomic loads (the workers set bits with
    /// atomic ORs, the used ring's just after publishing it).
    var markedPages: Set<UInt64> {
        var pages: Set<UInt64> = []
        for word in stride(from: 0, to: byteCount, by: 2) {
            let bits = SharedMemoryOrdering.loadAcquire(mapping.base + word)
            for bit in 0..<16 where bits & (1 << bit) != 0 { pages.insert(UInt64(word * 8 + bit)) }
        }
        return pages
    }

    /// The marked pages once they are `expected` (the used ring's bits come just after the
    /// completion the test waited for), or as they are after `milliseconds`.
    func markedPages(becoming expected: Set<UInt64>, milliseconds: Int = 2_000) -> Set<UInt64> {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while true {
            let pages = markedPages
            if pages == expected || ContinuousClock.now >= deadline { return pages }
            usleep(1_000)
        }
    }

    /// The marked pages 50 ms after the last completion: what was marked late is in.
    var settledMarkedPages: Set<UInt64> {
        usleep(50_000)
        return markedPages
    }

    /// Clears every bit, as QEMU's sync does (it exchanges them with zero).
    func clear() {
        for word in stride(from: 0, to: byteCount, by: 2) { SharedMemoryOrdering.storeRelease(0, mapping.base + word) }
    }

    /// The pages `[address, address + length)` touches.
    static func pages(_ address: UInt64, _ length: Int) -> Set<UInt64> {
        Set(address / 4096...(address + UInt64(length) - 1) / 4096)
    }
}

extension BackEndIntegration {
    @Suite("Dirty logging for live migration")
    struct DirtyLogTests {
        /// What a completed request must have marked: its device-writable buffers (the read's
        /// data and the status byte) and the used ring of its queue.
        static func expectedPages(_ pending: BlockGuest.Pending, guest: BlockGuest) -> Set<UInt64> {
            var pages = DirtyLogView.pages(pending.status.guestPhysicalAddress.rawValue, 1)
            if let readBack = pending.readBack { pages.formUnion(DirtyLogView.pages(readBack.address.rawValue, readBack.length)) }
            let used = guest.queues[pending.queue].guestPhysicalAddresses.usedRing.rawValue
            return pages.union(DirtyLogView.pages(used, SplitRing.usedRingByteCount(queueSize: guest.queueSize)))
        }

        /// Whether the log holds `expected` and nothing else but used-ring pages: a worker that goes
        /// to sleep after the completion the test waited for writes avail_event into its used
        /// ring and marks it then, so another queue's used ring may be marked after a `clear`.
        static func marksExactly(_ log: DirtyLogView, _ expected: Set<UInt64>, guest: BlockGuest) -> Bool {
            let usedRings = guest.queues.reduce(into: Set<UInt64>()) { pages, queue in
                pages.formUnion(DirtyLogView.pages(queue.guestPhysicalAddresses.usedRing.rawValue,
                                                   SplitRing.usedRingByteCount(queueSize: guest.queueSize)))
            }
            let marked = log.markedPages(becoming: expected)
            return marked.isSuperset(of: expected) && marked.subtracting(expected).isSubset(of: usedRings)
        }

        /// A front end with the two-region guest started on every ring.
        static func start(_ backEnd: InProcessBackEnd) throws -> (FrontEndSession, BlockGuest, VirtioFeatures) {
            let started = try StartedFrontEnd.start(backEnd, regions: BlockGuest.twoAdjacentRegions)
            return (started.session, started.guest, started.features)
        }

        /// QEMU's migration start: LOG_ALL in SET_FEATURES (with a reply), then every ring's
        /// SET_VRING_ADDR again with the LOG flag and `log_guest_addr` = its used ring (plus
        /// `iovaOffset` behind a vIOMMU, where QEMU passes the driver's address).
        static func startLogging(_ session: FrontEndSession, guest: BlockGuest, features: VirtioFeatures,
                                 on: Bool = true) throws {
            try session.setFeatures(on ? features.union(.logAll) : features.subtracting(.logAll))
            for (index, queue) in guest.queues.enumerated() {
                let physical = queue.guestPhysicalAddresses
                let offset = guest.iovaOffset
                // The ring addresses as the ring was started with: front-end virtual, or IOVAs.
                let virtual = queue.frontEndVirtualAddresses
                let rings = offset == 0
                    ? (virtual.descriptorTable.rawValue, virtual.usedRing.rawValue, virtual.availableRing.rawValue)
                    : (physical.descriptorTable.rawValue + offset, physical.usedRing.rawValue + offset,
                       physical.availableRing.rawValue + offset)
                try session.send(.setVringAddr(VringAddress(
                    index: UInt32(index), flags: on ? [.log] : [], descriptorTable: rings.0, usedRing: rings.1,
                    availableRing: rings.2, logGuestAddress: physical.usedRing.rawValue + offset)), needReply: true)
            }
        }

        @Test("with LOG_ALL on, a completed request has marked exactly its written pages and the used ring; off, nothing")
        func marksWhatTheDeviceWrites() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let (session, guest, features) = try Self.start(backEnd)
            #expect(session.protocolFeatures.contains(.logShmfd))
            #expect(session.offeredFeatures.contains(.logAll))
            let log = try DirtyLogView(coveringGuestBytes: 16 << 20)
            #expect(try session.send(.setLogBase(log.description), descriptors: [log.descriptor.rawValue])
                    == .ack(request: .setLogBase, value: 0))

            // Mapped but not on: nothing is marked.
            #expect(try guest.write(queue: 0, sector: 8, pattern(count: 4096, seed: 1)) == BlockGuest.statusOK)
            #expect(try guest.read(queue: 1, sector: 8, count: 4096).status == BlockGuest.statusOK)
            #expect(log.settledMarkedPages.isEmpty)

            try Self.startLogging(session, guest: guest, features: features)
            // A read of 3 pages plus a bit into a fresh buffer: its pages, its status, the used ring.
            let read = try guest.submit(queue: 1, type: BlockGuest.RequestType.read.rawValue, sector: 8, inLength: 3 * 4096 + 512)
            #expect(try guest.complete([read])[0].status == BlockGuest.statusOK)
            #expect(Self.marksExactly(log, Self.expectedPages(read, guest: guest), guest: guest), "\(log.markedPages)")
            // A write: only its status byte (the device reads its data) and the used ring.
            log.clear()
            let write = try guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 64,
                                         outData: pattern(count: 8 * 4096, seed: 2))
            #expect(try guest.complete([write])[0].status == BlockGuest.statusOK)
            #expect(Self.marksExactly(log, Self.expectedPages(write, guest: guest), guest: guest), "\(log.markedPages)")
            // Reads completed later through the engine (many in flight), and GET_ID (copied).
            log.clear()
            let reads = try (0..<8).map { index in
                try guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: UInt64(index * 64),
                                 inLength: 8192, kick: index == 7)
            }
            #expect(try guest.complete(reads).allSatisfy { $0.status == BlockGuest.statusOK })
            let identifier = try guest.submit(queue: 0, type: BlockGuest.RequestType.getIdentifier.rawValue, sector: 0, inLength: 20)
            #expect(try guest.complete([identifier])[0].status == BlockGuest.statusOK)
            let expected = (reads + [identifier]).reduce(into: Set<UInt64>()) { $0.formUnion(Self.expectedPages($1, guest: guest)) }
            #expect(Self.marksExactly(log, expected, guest: guest), "\(log.markedPages)")

            // Logging off again (migration over or cancelled): nothing more is marked.
            try Self.startLogging(session, guest: guest, features: features, on: false)
            log.clear()
            #expect(try guest.read(queue: 1, sector: 8, count: 4096).status == BlockGuest.statusOK)
            #expect(log.settledMarkedPages.isEmpty)
        }

        @Test("a resized log (SET_LOG_BASE again) takes the marks from its answer on; the old one gets none")
        func resizedLogReplacesTheOld() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let (session, guest, features) = try Self.start(backEnd)
            let small = try DirtyLogView(coveringGuestBytes: 8 << 20)
            #expect(try session.send(.setLogBase(small.description), descriptors: [small.descriptor.rawValue]) != nil)
            try Self.startLogging(session, guest: guest, features: features)
            // A buffer past the small log's 8 MiB (in the second region) is not marked there.
            let far = GuestPhysicalAddress((8 << 20) + 3 * 4096)
            let beyond = try guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: 0,
                                          inLength: 4096, inAddress: far)
            #expect(try guest.complete([beyond])[0].status == BlockGuest.statusOK)
            #expect(small.settledMarkedPages.allSatisfy { $0 < 2048 })
            #expect(backEnd.logs.first(waitingUpTo: 2_000) { $0.description.contains("a buffer lies past the dirty log") } != nil)

            let large = try DirtyLogView(coveringGuestBytes: 16 << 20)
            #expect(try session.send(.setLogBase(large.description), descriptors: [large.descriptor.rawValue]) != nil)
            small.clear()
            let read = try guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: 0,
                                        inLength: 4096, inAddress: far)
            #expect(try guest.complete([read])[0].status == BlockGuest.statusOK)
            #expect(Self.marksExactly(large, Self.expectedPages(read, guest: guest), guest: guest), "\(large.markedPages)")
            #expect(small.settledMarkedPages.isEmpty)
        }

        @Test("behind a vIOMMU the marks are by guest-physical page, the used ring's IOVA translated back")
        func marksGuestPhysicalPagesBehindAVIOMMU() throws {
            let scene = try IOMMUScene(mapEverything: true)
            let log = try DirtyLogView(coveringGuestBytes: 16 << 20)
            #expect(try scene.session.send(.setLogBase(log.description), descriptors: [log.descriptor.rawValue]) != nil)
            try Self.startLogging(scene.session, guest: scene.guest, features: scene.features)
            let read = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: 0,
                                              inLength: 2 * 4096)
            #expect(try scene.guest.complete([read])[0].status == BlockGuest.statusOK)
            #expect(Self.marksExactly(log, Self.expectedPages(read, guest: scene.guest), guest: scene.guest), "\(log.markedPages)")
        }
    }
}
