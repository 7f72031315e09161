import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

extension BackEndIntegration {
    /// INFLIGHT_SHMFD through the protocol: the area QEMU asks for with GET_INFLIGHT_FD, keeps,
    /// and hands back with SET_INFLIGHT_FD to a back end that restarts after a crash.
    @Suite("Inflight tracking (INFLIGHT_SHMFD)")
    struct InflightTests {
        static let queueSize = InProcessBackEnd.queueSize

        /// GET_INFLIGHT_FD as QEMU 7.2 sends it: the area, its descriptor, mapped here as QEMU does.
        private func getArea(_ session: FrontEndSession) throws -> (InflightDescription, OwnedFileDescriptor, MemoryMapping) {
            let request = InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: UInt16(InProcessBackEnd.queueCount),
                                              queueSize: UInt16(Self.queueSize))
            let answer = try #require(try session.exchange(.getInflightFd(request)))
            guard case .inflight(let area) = answer.reply else {
                Issue.record("reply \(answer.reply)")
                throw InflightTestError.noArea
            }
            let descriptor = try #require(answer.descriptors.first)
            let mapping = try MemoryMapping(descriptor: descriptor, offset: area.mmapOffset, length: area.mmapSize)
            return (area, descriptor, mapping)
        }

        enum InflightTestError: Error { case noArea }

        @Test("the area is a sealed memfd at a cookie offset, sized for every queue, logged into as requests complete")
        func areaIsExportedAndUsed() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(session)
            #expect(negotiated.protocolFeatures.contains(.inflightShmfd))
            let (area, descriptor, mapping) = try getArea(session)
            #expect(area.mmapSize == UInt64(2 * SplitInflightRegion.byteCount(queueSize: Self.queueSize)))
            #expect(area.mmapOffset % 4096 == 0)
            #expect(MemFD.cannotShrink(descriptor))
            try session.send(.setInflightFd(area), descriptors: [descriptor.rawValue], needReply: true)
            let guest = try BlockGuest(eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: guest, features: negotiated.features)
            #expect(try guest.write(queue: 0, sector: 8, pattern(count: 4096, seed: 61)) == BlockGuest.statusOK)
            #expect(try guest.write(queue: 1, sector: 16, pattern(count: 4096, seed: 62)) == BlockGuest.statusOK)
            for queue in 0..<2 {
                let region = SplitInflightRegion(base: mapping.base + queue * SplitInflightRegion.byteCount(queueSize: Self.queueSize),
                                                 queueSize: Self.queueSize)
                #expect(region.version == 1 && Int(region.descriptorCount) == Self.queueSize)
                #expect(region.usedIndex == 1, "queue \(queue)")
                #expect((0..<UInt16(Self.queueSize)).allSatisfy { !region.isInflight($0) })
            }
        }

        @Test("a restarted back end serves first what the area records in flight, in fetch order, then the ring")
        func restartResubmitsInFetchOrder() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let guest: BlockGuest
            let area: InflightDescription
            let descriptor: OwnedFileDescriptor
            let mapping: MemoryMapping
            let features: VirtioFeatures
            do {
                // The first back end instance: one write completes.
                let session = try backEnd.connect()
                let negotiated = try QEMUSequence.connect(session)
                features = negotiated.features
                (area, descriptor, mapping) = try getArea(session)
                try session.send(.setInflightFd(area), descriptors: [descriptor.rawValue], needReply: true)
                guest = try BlockGuest(eventIndex: features.contains(.eventIndex))
                try QEMUSequence.start(session, guest: guest, features: features)
                #expect(try guest.write(queue: 0, sector: 0, pattern(count: 512, seed: 70)) == BlockGuest.statusOK)
                // The instance "dies": its rings stop serving before the driver adds anything
                // more (otherwise its worker's re-check after the write could still take A).
                _ = try QEMUSequence.stop(session, queueCount: InProcessBackEnd.queueCount)
            }  // the connection goes away
            // What the dead instance left: it had fetched B, then A, and completed neither; the
            // driver has since made C available too.
            let dataA = pattern(count: 512, seed: 71), dataB = pattern(count: 512, seed: 72), dataC = pattern(count: 512, seed: 73)
            let a = try guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 10, outData: dataA, kick: false)
            let b = try guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 20, outData: dataB, kick: false)
            let region = SplitInflightRegion(base: mapping.base, queueSize: Self.queueSize)
            region.recordFetch(head: b.head, counter: 10)
            region.recordFetch(head: a.head, counter: 11)
            let c = try guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 30, outData: dataC, kick: false)

            // The restarted instance: QEMU hands the area back and restarts the ring at used->idx.
            let session = try backEnd.connect()
            _ = try QEMUSequence.connect(session)
            try session.send(.setInflightFd(area), descriptors: [descriptor.rawValue], needReply: true)
            try QEMUSequence.start(session, guest: guest, features: features, bases: [1, 0])
            try guest.kicks[0].signal()
            let done = try guest.complete([a, b, c])
            #expect(done.allSatisfy { $0.status == BlockGuest.statusOK })
            // The used ring, in the order the back end completed them: B, A (resubmitted by fetch
            // order), then C from the ring.
            let used = guest.queues[0].usedRing.pointer
            let order = (1...3).map { RingMemory.loadUInt32(used, offset: SplitRing.usedElementOffset(slot: $0)) }
            #expect(order == [UInt32(b.head), UInt32(a.head), UInt32(c.head)])
            #expect(try backEnd.imageBytes(offset: 10 * 512, count: 512) == dataA)
            #expect(try backEnd.imageBytes(offset: 20 * 512, count: 512) == dataB)
            #expect(try backEnd.imageBytes(offset: 30 * 512, count: 512) == dataC)
            #expect(region.usedIndex == 4 && !region.isInflight(a.head) && !region.isInflight(b.head))
        }

        @Test("an area not sealed against shrinking, without room for its queues' regions, or misaligned is refused; the connection stays")
        func hostileAreas() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            _ = try QEMUSequence.connect(session)
            let size = UInt64(2 * SplitInflightRegion.byteCount(queueSize: Self.queueSize))
            let unsealed = try MemFD.create(name: "unsealed", size: 1 << 20)
            let sealed = try MemFD.create(name: "sealed", size: 1 << 20, allowSealing: true)
            try MemFD.sealSize(sealed)
            let cases: [(OwnedFileDescriptor, InflightDescription)] = [
                (unsealed, InflightDescription(mmapSize: size, mmapOffset: 0, numQueues: 2, queueSize: UInt16(Self.queueSize))),
                (sealed, InflightDescription(mmapSize: 2 * 64 - 1, mmapOffset: 0, numQueues: 2, queueSize: UInt16(Self.queueSize))),
                (sealed, InflightDescription(mmapSize: size, mmapOffset: 100, numQueues: 2, queueSize: UInt16(Self.queueSize))),
                (sealed, InflightDescription(mmapSize: size, mmapOffset: 1 << 20, numQueues: 2, queueSize: UInt16(Self.queueSize))),
                (sealed, InflightDescription(mmapSize: size, mmapOffset: 0, numQueues: 3, queueSize: UInt16(Self.queueSize))),
            ]
            for (descriptor, area) in cases {
                #expect(throws: FrontEndError.failureAck(request: .setInflightFd, value: 1), "\(area)") {
                    try session.send(.setInflightFd(area), descriptors: [descriptor.rawValue], needReply: true)
                }
            }
            // Still served: a good area is accepted.
            try session.send(.setInflightFd(InflightDescription(mmapSize: size, mmapOffset: 4096, numQueues: 2,
                                                                queueSize: UInt16(Self.queueSize))),
                             descriptors: [sealed.rawValue], needReply: true)
        }
    
        @Test("the front end names its queue-size (QEMU 10.0.13: 128) and sets a larger ring (1024): the regions hold the largest ring the device accepts, and the ring logs in its own")
        func regionsHoldTheLargestRingTheDeviceAccepts() throws {
            let backEnd = try InProcessBackEnd(queueSize: 1024)
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(session)
            let request = InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: 2, queueSize: 128)
            let answer = try #require(try session.exchange(.getInflightFd(request)))
            guard case .inflight(let area) = answer.reply else { Issue.record("reply \(answer.reply)"); return }
            let regionBytes = SplitInflightRegion.byteCount(queueSize: 1024)
            #expect(area.mmapSize == UInt64(2 * regionBytes))
            #expect(area.numQueues == 2 && area.queueSize == 128, "the request's values, echoed")
            let descriptor = try #require(answer.descriptors.first)
            let mapping = try MemoryMapping(descriptor: descriptor, offset: area.mmapOffset, length: area.mmapSize)
            // QEMU hands back what it got, naming its own queue size again.
            try session.send(.setInflightFd(area), descriptors: [descriptor.rawValue], needReply: true)
            let guest = try BlockGuest(queueSize: 1024, eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: guest, features: negotiated.features)
            #expect(try guest.write(queue: 1, sector: 8, pattern(count: 4096, seed: 63)) == BlockGuest.statusOK)
            let region = SplitInflightRegion(base: mapping.base + regionBytes, queueSize: 1024)
            #expect(region.version == 1 && region.descriptorCount == 1024 && region.usedIndex == 1)
            #expect(!backEnd.logs.all.contains { $0.message.contains("without crash recovery") })
        }

        @Test("RESET_DEVICE drops the area: its pages are freed, and the next GET_INFLIGHT_FD gets a fresh one at the same offset")
        func resetDeviceFreesTheArea() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(session)
            let (area, descriptor, mapping) = try getArea(session)
            try session.send(.setInflightFd(area), descriptors: [descriptor.rawValue], needReply: true)
            let guest = try BlockGuest(eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: guest, features: negotiated.features)
            #expect(try guest.write(queue: 0, sector: 8, pattern(count: 512, seed: 64)) == BlockGuest.statusOK)
            let region = SplitInflightRegion(base: mapping.base, queueSize: Self.queueSize)
            #expect(region.version == 1 && region.usedIndex == 1)

            try session.resetDevice()
            try session.send(.getFeatures)  // a reply: RESET_DEVICE has been handled
            #expect(region.version == 0 && region.usedIndex == 0, "the area's pages were freed")
            let (again, _, _) = try getArea(session)
            #expect(again.mmapOffset == area.mmapOffset && again.mmapSize == area.mmapSize)
        }

        @Test("a region the ring cannot use leaves the queue served, without crash recovery, and says so")
        func unusableRegionKeepsTheQueueServing() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(session)
            let (area, descriptor, mapping) = try getArea(session)
            // Queue 0's region claims a layout version nobody wrote.
            RingMemory.storeUInt16(7, mapping.base, offset: 8)
            try session.send(.setInflightFd(area), descriptors: [descriptor.rawValue], needReply: true)
            let guest = try BlockGuest(eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: guest, features: negotiated.features)
            #expect(try guest.write(queue: 0, sector: 8, pattern(count: 512, seed: 65)) == BlockGuest.statusOK)
            #expect(try guest.write(queue: 1, sector: 9, pattern(count: 512, seed: 66)) == BlockGuest.statusOK)
            #expect(backEnd.logs.all.contains { $0.message.contains("runs without crash recovery") })
            #expect(!guest.errorSignalled(queue: 0, milliseconds: 0))
            #expect(SplitInflightRegion(base: mapping.base, queueSize: Self.queueSize).version == 7, "left alone")
            let second = SplitInflightRegion(base: mapping.base + SplitInflightRegion.byteCount(queueSize: Self.queueSize),
                                             queueSize: Self.queueSize)
            #expect(second.version == 1 && second.usedIndex == 1, "the other queue logs as usual")
        }
    }
}
