#if canImport(Glibc)
import Glibc
#endif
import IOMMUModel
import StorageIO
import Testing
import VhostSystem
import VhostUserBackend
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioBlk
import VirtioCore
import VirtioSpec

/// A guest behind a vIOMMU, played by the test front end: ACCESS_PLATFORM negotiated, a
/// back-end channel, and IOVA = guest-physical address + `offset`, mapped page by page with a
/// `TwoStepMapper` whose messages go to the back end as IOTLB_MSG UPDATE / INVALIDATE.
final class IOMMUScene {
    static let offset: UInt64 = 1 << 32
    static let page: UInt64 = 4096

    let backEnd: InProcessBackEnd
    let session: FrontEndSession
    let guest: BlockGuest
    let channel: UnixSocket
    let features: VirtioFeatures
    var mapper: TwoStepMapper
    private(set) var missesSeen: [IOTLBMessage] = []

    /// Where `scatteredDescriptorTable` puts the second front-end view of region 0: the same
    /// memfd pages at another guest-physical and front-end address.
    static let aliasGuestPhysical: UInt64 = 64 << 20
    static let aliasUserDistance: UInt64 = 1 << 40

    /// Starts both rings with IOVA ring addresses. With `mapEverything` all guest RAM is mapped
    /// read-write first; otherwise only the rings' pages are (as QEMU's used-ring UPDATE plus
    /// the guest's own mappings), and buffers miss. With `scatteredDescriptorTable` (and
    /// `mapEverything`), queue 0's descriptor table straddles a page boundary and its second
    /// page is mapped through a second front-end view of the same memory: contiguous in IOVA
    /// space, not in the front end's, as a guest IOMMU maps a ring's pages wherever they are.
    init(mapEverything: Bool, mapRings: Bool = true, scatteredDescriptorTable: Bool = false,
         ioEngine: IOEngineKind = IOEngineSelection.preferred,
         serving: ((VirtioBlkDevice) -> any VhostUserDevice)? = nil) throws {
        backEnd = try InProcessBackEnd(ioEngine: ioEngine, serving: serving)
        session = try backEnd.connect()
        let negotiated = try session.negotiate(
            wanted: FrontEndSession.qemu72BlockFeatures, wantedProtocol: FrontEndSession.qemu72ProtocolFeatures,
            requiring: [.accessPlatform], requiringProtocol: [.backendReq, .replyAck, .config])
        features = negotiated.features
        let (ours, theirs) = try UnixSocket.pair()
        try session.send(.setBackendReqFd, descriptors: [theirs.rawValue], needReply: true)
        channel = ours
        guest = try BlockGuest(eventIndex: features.contains(.eventIndex))
        guest.iovaOffset = Self.offset
        mapper = try TwoStepMapper(window: Self.offset...(Self.offset + (1 << 32) - 1))
        let reservation = try mapper.reserve(size: 16 << 20)
        precondition(reservation.range.lowerBound == Self.offset)
        try session.setFeatures(features)
        var regions = try guest.memoryRegions
        if scatteredDescriptorTable {
            // Rings anew, queue 0's descriptor table starting 1 KiB before a page boundary.
            let cursor = try guest.ram.allocate(size: 16, alignment: 16).guestPhysicalAddress.rawValue + 16
            let boundary = (cursor + 2048 + Self.page - 1) & ~(Self.page - 1)
            _ = try guest.ram.allocate(size: Int(boundary - 1024 - cursor), alignment: 16)
            try guest.replaceRings()
            let first = regions[0].region
            regions.append((try MemoryRegionDescription(
                guestPhysicalAddress: Self.aliasGuestPhysical, size: first.size,
                userAddress: first.userAddress + Self.aliasUserDistance, mmapOffset: first.mmapOffset), regions[0].fd))
        }
        try session.setMemoryTable(regions)
        if mapEverything {
            // One UPDATE per memfd region (a huge-page-like mapping), split later by unmaps.
            for start in [UInt64(0), 8 << 20] {
                let user = try #require(guest.ram.frontEndVirtualAddress(of: GuestPhysicalAddress(start)))
                try send(try mapper.link(iova: start + Self.offset, size: 8 << 20, userAddress: user.rawValue,
                                         permission: .readWrite))
            }
            if scatteredDescriptorTable {
                let table = guest.queues[0].guestPhysicalAddresses.descriptorTable.rawValue
                let secondPage = (table + Self.page) & ~(Self.page - 1)
                let user = try #require(guest.ram.frontEndVirtualAddress(of: GuestPhysicalAddress(secondPage)))
                try send(try mapper.replace(iova: secondPage + Self.offset, userAddress: user.rawValue + Self.aliasUserDistance,
                                            permission: .readWrite))
            }
        } else if mapRings {
            for queue in guest.queues {
                let addresses = queue.guestPhysicalAddresses
                let size = queue.queueSize
                try map(guestPhysical: addresses.descriptorTable.rawValue,
                        size: UInt64(SplitRing.descriptorTableByteCount(queueSize: size)), permission: .readWrite)
                try map(guestPhysical: addresses.availableRing.rawValue,
                        size: UInt64(SplitRing.availableRingByteCount(queueSize: size)), permission: .readWrite)
                try map(guestPhysical: addresses.usedRing.rawValue,
                        size: UInt64(SplitRing.usedRingByteCount(queueSize: size)), permission: .readWrite)
            }
        }
        for (index, queue) in guest.queues.enumerated() {
            let ring = UInt32(index)
            let addresses = queue.guestPhysicalAddresses
            try session.send(.setVringNum(VringState(index: ring, num: UInt32(queue.queueSize))))
            try session.send(.setVringBase(VringState(index: ring, num: 0)))
            try session.send(.setVringAddr(VringAddress(
                index: ring, flags: [], descriptorTable: addresses.descriptorTable.rawValue + Self.offset,
                usedRing: addresses.usedRing.rawValue + Self.offset,
                availableRing: addresses.availableRing.rawValue + Self.offset, logGuestAddress: 0)))
            try session.send(.setVringErr(VringFileIndex(index: ring, hasFileDescriptor: true)),
                             descriptors: [guest.errors[index].rawValue])
            try session.send(.setVringCall(VringFileIndex(index: ring, hasFileDescriptor: true)),
                             descriptors: [guest.calls[index].rawValue])
            try session.send(.setVringKick(VringFileIndex(index: ring, hasFileDescriptor: true)),
                             descriptors: [guest.kicks[index].rawValue])
            try session.enableRing(index: ring, true)
        }
        try QEMUSequence.settle(session)
    }

    deinit {
        backEnd.stop()
    }

    /// Links the pages covering `size` bytes at guest-physical `address` that are not linked
    /// yet, and sends the UPDATEs (each acknowledged by the back end).
    func map(guestPhysical address: UInt64, size: UInt64, permission: IOMMUPermission) throws {
        var page = address & ~(Self.page - 1)
        while page < address + size {
            let iova = page + Self.offset
            if mapper.links.lookup(iova) == nil {
                let user = try #require(guest.ram.frontEndVirtualAddress(of: GuestPhysicalAddress(page)))
                try send(try mapper.link(iova: iova, size: Self.page, userAddress: user.rawValue, permission: permission))
            }
            page += Self.page
        }
    }

    /// Unlinks the pages covering the range and sends the INVALIDATEs.
    func unmap(guestPhysical address: UInt64, size: UInt64) throws {
        var page = address & ~(Self.page - 1)
        while page < address + size {
            if mapper.links.lookup(page + Self.offset) != nil {
                try send(try mapper.unlink(iova: page + Self.offset, size: Self.page))
            }
            page += Self.page
        }
    }

    func send(_ messages: [IOTLBMessageToSend]) throws {
        for message in messages {
            let wire: IOTLBMessage
            switch message {
            case .update(let iova, let size, let userAddress, let permission):
                wire = IOTLBMessage(iova: iova, size: size, userAddress: userAddress,
                                    permission: IOTLBPermission(rawValue: permission.rawValue)!, type: .update)
            case .invalidate(let iova, let size):
                wire = IOTLBMessage(iova: iova, size: size, userAddress: 0, permission: .none, type: .invalidate)
            }
            try session.send(.iotlbMsg(wire), needReply: true)
        }
    }

    /// The next MISS on the back-end channel within `milliseconds`, or nil.
    func nextMiss(milliseconds: Int) throws -> IOTLBMessage? {
        guard waitReadable(channel.rawValue, milliseconds: milliseconds) else { return nil }
        var bytes = [UInt8](repeating: 0, count: MessageHeader.byteCount + IOTLBMessage.byteCount)
        let received = try bytes.withUnsafeMutableBytes { raw in
            try channel.receiveExactly(into: raw, deadline: MonotonicDeadline(millisecondsFromNow: 1_000))
        }
        _ = received
        let message = try bytes.withUnsafeBytes { raw in
            let header = try MessageHeader(parsing: UnsafeRawBufferPointer(rebasing: raw[0..<MessageHeader.byteCount]))
            #expect(header.flags.contains(.needReply))
            return try BackendMessageDecoder.decode(
                header: header, payload: UnsafeRawBufferPointer(rebasing: raw[MessageHeader.byteCount...]),
                fileDescriptorCount: 0)
        }
        guard case .iotlbMsg(let miss) = message, miss.type == .miss else {
            Issue.record("unexpected back-end message \(message)")
            return nil
        }
        missesSeen.append(miss)
        return miss
    }

    /// Answers a MISS as QEMU does: the UPDATE on the main socket (acknowledged), then the ack.
    func answer(_ miss: IOTLBMessage, permission: IOMMUPermission = .readWrite) throws {
        try map(guestPhysical: miss.iova - Self.offset, size: 1, permission: permission)
        try channel.send(BackendAck(request: .iotlbMsg, value: 0).encoded())
    }

    /// Waits for `pending`, answering every MISS (after `delayMilliseconds`) meanwhile.
    func completeAnsweringMisses(_ pending: [BlockGuest.Pending], delayMilliseconds: Int = 0) throws -> [BlockGuest.Completion] {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let miss = try nextMiss(milliseconds: 50) {
                if delayMilliseconds > 0 { usleepMilliseconds(delayMilliseconds) }
                try answer(miss)
                continue
            }
            if let done = try? guest.complete(pending, milliseconds: 20) { return done }
        }
        return try guest.complete(pending, milliseconds: 1)
    }
}

extension BackEndIntegration {
    @Suite("Behind a vIOMMU (ACCESS_PLATFORM, IOTLB, MISS)")
    struct IOMMUTests {
        @Test("offers ACCESS_PLATFORM with BACKEND_REQ and REPLY_ACK")
        func offersAccessPlatform() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(session)
            #expect(session.offeredFeatures.contains(.accessPlatform))
            #expect(negotiated.protocolFeatures.isSuperset(of: [.backendReq, .replyAck]))
            #expect(!negotiated.features.contains(.accessPlatform))
        }

        @Test("I/O through IOVAs on both queues reaches the image byte-exact")
        func ioThroughIOVAs() throws {
            let scene = try IOMMUScene(mapEverything: true)
            for queue in 0..<2 {
                let data = pattern(count: 3 * 4096 + 512, seed: UInt64(10 + queue))
                let sector = UInt64(64 + queue * 64)
                #expect(try scene.guest.write(queue: queue, sector: sector, data) == BlockGuest.statusOK)
                #expect(try scene.backEnd.imageBytes(offset: Int(sector) * 512, count: data.count) == data)
                let back = try scene.guest.read(queue: 1 - queue, sector: sector, count: data.count)
                #expect(back.status == BlockGuest.statusOK)
                #expect(back.data == data)
            }
            // Buffers straddling the two memfd regions, through two IOTLB entries.
            let straddling = pattern(count: 8192, seed: 3)
            let boundary = GuestPhysicalAddress(UInt64(8 << 20) - 4096)
            let write = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 500,
                                               outData: straddling, outAddress: boundary)
            #expect(try scene.guest.complete([write])[0].status == BlockGuest.statusOK)
            #expect(try scene.backEnd.imageBytes(offset: 500 * 512, count: straddling.count) == straddling)
            #expect(scene.missesSeen.isEmpty)
            #expect(try scene.nextMiss(milliseconds: 0) == nil)
        }

        @Test("a ring contiguous in IOVA space on pages apart in the front end's is served through a contiguous view")
        func scatteredRingIsServed() throws {
            let scene = try IOMMUScene(mapEverything: true, scatteredDescriptorTable: true)
            let table = scene.guest.queues[0].guestPhysicalAddresses.descriptorTable.rawValue
            #expect(table % IOMMUScene.page > IOMMUScene.page - 2048, "the table straddles a page boundary")
            // Enough requests that descriptors on both pages of the table are used.
            for round in 0..<3 {
                for request in 0..<40 {
                    let data = pattern(count: 1024, seed: UInt64(round * 100 + request))
                    let sector = UInt64(request * 2)
                    #expect(try scene.guest.write(queue: 0, sector: sector, data) == BlockGuest.statusOK)
                    #expect(try scene.backEnd.imageBytes(offset: Int(sector) * 512, count: data.count) == data)
                }
            }
            #expect(!scene.guest.errorSignalled(queue: 0, milliseconds: 0))
            #expect(!scene.backEnd.logs.all.contains { $0.message.contains("broke the virtqueue rules") })
        }

        @Test("buffers not yet mapped miss; answered late, every MISS is served and the bytes are exact")
        func lateMissAnswers() throws {
            let scene = try IOMMUScene(mapEverything: false)
            let data = pattern(count: 8192, seed: 21)
            let write = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 40, outData: data)
            let firstMiss = try #require(try scene.nextMiss(milliseconds: 5_000))
            #expect(firstMiss.iova >= IOMMUScene.offset)
            try scene.answer(firstMiss)
            let done = try scene.completeAnsweringMisses([write], delayMilliseconds: 100)
            #expect(done[0].status == BlockGuest.statusOK)
            #expect(try scene.backEnd.imageBytes(offset: 40 * 512, count: data.count) == data)
            let read = try scene.guest.submit(queue: 1, type: BlockGuest.RequestType.read.rawValue, sector: 40,
                                              inLength: data.count)
            let back = try scene.completeAnsweringMisses([read], delayMilliseconds: 50)
            #expect(back[0].status == BlockGuest.statusOK)
            #expect(back[0].data == data)
            #expect(scene.missesSeen.count >= 2)
            #expect(scene.missesSeen.allSatisfy { $0.type == .miss })
        }

        @Test("a MISS not answered yet stalls only its queue: the other queue and the main socket are served meanwhile")
        func missStallsOnlyItsQueue() throws {
            let scene = try IOMMUScene(mapEverything: true)
            // Queue 0's buffer lies in a hole; everything else is mapped.
            let hole = UInt64(12 << 20)
            try scene.unmap(guestPhysical: hole, size: 64 << 10)
            let data = pattern(count: 8192, seed: 23)
            let stalled = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 60,
                                                 outData: data, outAddress: GuestPhysicalAddress(hole))
            let miss = try #require(try scene.nextMiss(milliseconds: 5_000))
            #expect(miss.iova == hole + IOMMUScene.offset)
            // While queue 0 waits for its UPDATE: queue 1 writes and reads back, the socket answers.
            let other = pattern(count: 4096, seed: 24)
            #expect(try scene.guest.write(queue: 1, sector: 200, other) == BlockGuest.statusOK)
            #expect(try scene.guest.read(queue: 1, sector: 200, count: other.count).data == other)
            _ = try scene.session.readConfig(offset: 0, size: 8)
            #expect((try? scene.guest.complete([stalled], milliseconds: 1)) == nil, "queue 0 must still wait for its UPDATE")
            try scene.answer(miss)
            let done = try scene.completeAnsweringMisses([stalled])
            #expect(done[0].status == BlockGuest.statusOK)
            #expect(try scene.backEnd.imageBytes(offset: 60 * 512, count: data.count) == data)
            #expect(!scene.backEnd.logs.all.contains { $0.message.contains("IOTLB miss not answered") })
        }

        @Test("a MISS never answered fails that request with IOERR after the bound; the queue works on")
        func unansweredMissFails() throws {
            let scene = try IOMMUScene(mapEverything: true)
            // A hole nobody maps: guest-physical 12 MiB, 64 KiB.
            let hole = UInt64(12 << 20)
            try scene.unmap(guestPhysical: hole, size: 64 << 10)
            let read = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: 0,
                                              inLength: 4096, inAddress: GuestPhysicalAddress(hole))
            let miss = try #require(try scene.nextMiss(milliseconds: 5_000))
            #expect(miss.iova == hole + IOMMUScene.offset)
            #expect(miss.permission == .writeOnly)
            let done = try scene.guest.complete([read], milliseconds: 10_000)
            #expect(done[0].status == BlockGuest.statusIOError)
            #expect(done[0].usedLength == 1)
            #expect(done[0].data == [UInt8](repeating: 0xA5, count: 4096))
            #expect(scene.backEnd.logs.all.contains { $0.message.contains("IOTLB miss not answered in time") })
            // Not broken: the next request is served.
            let data = pattern(count: 4096, seed: 5)
            #expect(try scene.guest.write(queue: 0, sector: 8, data) == BlockGuest.statusOK)
            #expect(!scene.guest.errorSignalled(queue: 0, milliseconds: 0))
        }

        @Test("permission faults both ways fail the request without touching memory")
        func permissionFaults() throws {
            let scene = try IOMMUScene(mapEverything: true)
            let readOnly = UInt64(12 << 20), writeOnly = UInt64(13 << 20)
            try scene.unmap(guestPhysical: readOnly, size: 4096)
            try scene.map(guestPhysical: readOnly, size: 4096, permission: .read)
            try scene.unmap(guestPhysical: writeOnly, size: 4096)
            try scene.map(guestPhysical: writeOnly, size: 4096, permission: .write)

            // The device would write into a read-only mapping (a READ request).
            let original = pattern(count: 4096, seed: 7)
            #expect(try scene.guest.write(queue: 0, sector: 16, original) == BlockGuest.statusOK)
            let read = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: 16,
                                              inLength: 4096, inAddress: GuestPhysicalAddress(readOnly))
            let readDone = try scene.guest.complete([read])
            #expect(readDone[0].status == BlockGuest.statusIOError)
            #expect(readDone[0].data == [UInt8](repeating: 0xA5, count: 4096))

            // The device would read from a write-only mapping (a WRITE request).
            let secret = pattern(count: 4096, seed: 8)
            let write = try scene.guest.submit(queue: 1, type: BlockGuest.RequestType.write.rawValue, sector: 16,
                                               outData: secret, outAddress: GuestPhysicalAddress(writeOnly))
            #expect(try scene.guest.complete([write])[0].status == BlockGuest.statusIOError)
            #expect(try scene.backEnd.imageBytes(offset: 16 * 512, count: 4096) == original)
            #expect(scene.backEnd.logs.all.contains { $0.message.contains("IOMMU permission fault") })
            // Neither fault sent a MISS, and both queues work on.
            #expect(scene.missesSeen.isEmpty)
            #expect(try scene.guest.read(queue: 1, sector: 16, count: 4096).data == original)
            #expect(try scene.guest.write(queue: 0, sector: 24, secret) == BlockGuest.statusOK)
        }

        @Test("rings not mapped at start wait for the UPDATE; their MISS goes out only after a kick")
        func unmappedRingsWait() throws {
            let scene = try IOMMUScene(mapEverything: false, mapRings: false)
            // No kick yet: no MISS (QEMU 7.2 may still be in its start sequence).
            #expect(try scene.nextMiss(milliseconds: 200) == nil)
            let data = pattern(count: 4096, seed: 31)
            let write = try scene.guest.submit(queue: 1, type: BlockGuest.RequestType.write.rawValue, sector: 72, outData: data)
            let done = try scene.completeAnsweringMisses([write])
            #expect(done[0].status == BlockGuest.statusOK)
            #expect(try scene.backEnd.imageBytes(offset: 72 * 512, count: data.count) == data)
            let ringPages = scene.guest.queues[1].guestPhysicalAddresses
            #expect(scene.missesSeen.contains { $0.iova - IOMMUScene.offset == ringPages.descriptorTable.rawValue })
        }

        @Test("an INVALIDATE covering a ring unmaps it; the next kick misses on it; the UPDATE resumes it in place")
        func invalidatedRingIsReResolved() throws {
            let scene = try IOMMUScene(mapEverything: true)
            let first = pattern(count: 4096, seed: 51)
            #expect(try scene.guest.write(queue: 0, sector: 200, first) == BlockGuest.statusOK)
            let table = scene.guest.queues[0].guestPhysicalAddresses.descriptorTable.rawValue
            try scene.unmap(guestPhysical: table, size: UInt64(SplitRing.descriptorTableByteCount(queueSize: scene.guest.queueSize)))
            let second = pattern(count: 4096, seed: 52)
            let write = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 208, outData: second)
            let done = try scene.completeAnsweringMisses([write])
            #expect(done[0].status == BlockGuest.statusOK)
            #expect(scene.missesSeen.first?.iova == table + IOMMUScene.offset)
            #expect(try scene.backEnd.imageBytes(offset: 208 * 512, count: 4096) == second)
            // The ring kept its indices: the other queue and this one go on normally.
            #expect(try scene.guest.read(queue: 0, sector: 200, count: 4096).data == first)
            #expect(!scene.guest.errorSignalled(queue: 0, milliseconds: 0))
        }

        /// Lazy guests flush the whole IOVA space, rings included, again and again. A ring miss
        /// answered while nothing waits in the ring (a kick with no new request) must not leave
        /// the miss pending: the next time the ring is cut, the kick must send a new MISS
        /// rather than wait silently on the old deadline and stop the queue (seen with QEMU 7.2).
        @Test("a ring cut again after its MISS was answered misses again; the queue does not stop")
        func ringCutTwiceMissesTwice() throws {
            let scene = try IOMMUScene(mapEverything: true)
            let table = scene.guest.queues[0].guestPhysicalAddresses.descriptorTable.rawValue
            let tableSize = UInt64(SplitRing.descriptorTableByteCount(queueSize: scene.guest.queueSize))
            try scene.unmap(guestPhysical: table, size: tableSize)
            try scene.guest.kicks[0].signal()  // nothing new in the ring
            let first = try #require(try scene.nextMiss(milliseconds: 1_000))
            #expect(first.iova == table + IOMMUScene.offset)
            try scene.answer(first)
            try scene.unmap(guestPhysical: table, size: tableSize)
            let data = pattern(count: 4096, seed: 53)
            let write = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 216, outData: data)
            // Well inside the 2 s bound: a MISS for the same ring IOVA goes out again.
            let second = try #require(try scene.nextMiss(milliseconds: 1_000), "no second MISS for the ring")
            #expect(second.iova == table + IOMMUScene.offset)
            try scene.answer(second)
            let done = try scene.completeAnsweringMisses([write])
            #expect(done[0].status == BlockGuest.statusOK)
            #expect(try scene.backEnd.imageBytes(offset: 216 * 512, count: 4096) == data)
            #expect(!scene.guest.errorSignalled(queue: 0, milliseconds: 0))
        }

        @Test("an UPDATE past the IOTLB entry limit is answered 1; the connection stays; counts are logged at the end")
        func refusedUpdateAndCounts() throws {
            var scene: IOMMUScene? = try IOMMUScene(mapEverything: true)
            let logs = try #require(scene).backEnd.logs
            try body(try #require(scene))
            scene = nil  // stops the back end, which closes the connection
            let entry = logs.first(waitingUpTo: 5_000) { $0.message == "IOTLB traffic" }
            #expect(entry?.metadata["updates"] == "2048")
            #expect(entry?.metadata["misses"] == "0")
        }

        private func body(_ scene: IOMMUScene) throws {
            // Separate pages far from the guest's IOVAs, until the entry limit (2048) refuses one.
            let user = try #require(scene.guest.ram.frontEndVirtualAddress(of: GuestPhysicalAddress(0))).rawValue
            var accepted = 0
            var refused = false
            for index in 0..<2_100 where !refused {
                let update = IOTLBMessage(iova: (8 << 32) + UInt64(index) * 0x2000, size: 0x1000, userAddress: user,
                                          permission: .readOnly, type: .update)
                do {
                    try scene.session.send(.iotlbMsg(update), needReply: true)
                    accepted += 1
                } catch {
                    refused = true
                }
            }
            #expect(refused)
            #expect(accepted == 2048 - 2)
            // The connection stays: I/O works on.
            let data = pattern(count: 4096, seed: 41)
            #expect(try scene.guest.write(queue: 0, sector: 4, data) == BlockGuest.statusOK)
        }

        @Test("an INVALIDATE during I/O is acknowledged once workers switched; later requests miss")
        func invalidationDuringIO() throws {
            let scene = try IOMMUScene(mapEverything: true)
            let region = UInt64(10 << 20)
            var pending: [BlockGuest.Pending] = []
            var expected: [(UInt64, [UInt8])] = []
            for index in 0..<16 {
                let data = pattern(count: 4096, seed: UInt64(100 + index))
                let sector = UInt64(1024 + index * 8)
                pending.append(try scene.guest.submit(
                    queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: sector, outData: data,
                    outAddress: GuestPhysicalAddress(region + UInt64(index) * 4096)))
                expected.append((sector, data))
            }
            // Acknowledged only after the queue's worker took the IOTLB without the range.
            try scene.unmap(guestPhysical: region, size: 16 * 4096)
            let done = try scene.completeAnsweringMisses(pending)
            #expect(done.allSatisfy { $0.status == BlockGuest.statusOK })
            for (sector, data) in expected {
                #expect(try scene.backEnd.imageBytes(offset: Int(sector) * 512, count: data.count) == data)
            }
            // A request after the invalidation uses the range again: it must miss first.
            let before = scene.missesSeen.count
            try scene.unmap(guestPhysical: region, size: 16 * 4096)
            let again = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: 1024,
                                               inLength: 4096, inAddress: GuestPhysicalAddress(region))
            let back = try scene.completeAnsweringMisses([again])
            #expect(back[0].status == BlockGuest.statusOK)
            #expect(back[0].data == expected[0].1)
            #expect(scene.missesSeen.count > before)
            #expect(scene.missesSeen[before...].contains { $0.iova == region + IOMMUScene.offset })
        }
    }
}
