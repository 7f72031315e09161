import Testing
import VhostSystem
import VhostTestSupport
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

extension BackEndIntegration {
    /// The framework's completion model with a device that completes later and out of order.
    @Suite("Requests completed later, out of order")
    struct DeferredCompletionTests {
        /// A back end serving a `DeferringDevice`, a started guest, and the device.
        private static func scene() throws -> (InProcessBackEnd, FrontEndSession, BlockGuest, DeferringDevice) {
            var deferring: DeferringDevice?
            // The block handler underneath completes in submit; the device defers the rest.
            let backEnd = try InProcessBackEnd(ioEngine: .sync) { block in
                let device = DeferringDevice(block)
                deferring = device
                return device
            }
            let session = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(session)
            let guest = try BlockGuest(eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: guest, features: negotiated.features)
            return (backEnd, session, guest, try #require(deferring))
        }

        /// Used elements until `count` arrived, in ring order.
        private static func used(_ guest: BlockGuest, queue: Int, count: Int) throws -> [DriverSplitQueue.UsedElement] {
            var elements: [DriverSplitQueue.UsedElement] = []
            let deadline = ContinuousClock.now + .seconds(10)
            while elements.count < count, ContinuousClock.now < deadline {
                elements += guest.queues[queue].takeUsed()
                if elements.count < count { _ = waitReadable(guest.calls[queue].rawValue, milliseconds: 5) }
            }
            return elements
        }

        @Test("completions reported newest first reach the used ring in that order, each with its length and data")
        func outOfOrderCompletions() throws {
            let (backEnd, session, guest, device) = try Self.scene()
            defer { withExtendedLifetime(session) {} }  // the connection lives as long as its session
            defer { backEnd.stop() }
            let data = (0..<4).map { pattern(count: 4096, seed: UInt64(10 + $0)) }
            for (index, bytes) in data.enumerated() {
                try writeFile(backEnd.imagePath, bytes, offset: index * 4096)
            }
            let reads = try (0..<4).map { index in
                try guest.submit(queue: 0, type: BlockRequestType.read.rawValue, sector: UInt64(index) * 8,
                                 inLength: 4096, kick: index == 3)
            }
            device.release()
            let used = try Self.used(guest, queue: 0, count: 4)
            #expect(used.map(\.id) == reads.reversed().map { UInt32($0.head) })
            #expect(used.allSatisfy { $0.length == 4096 + 1 })
            for (index, read) in reads.enumerated() {
                #expect(read.status.pointer.load(as: UInt8.self) == BlockRequestStatus.ok.rawValue)
                let readBack = try #require(read.readBack)
                #expect(try guest.ram.read(readBack.length, at: readBack.address) == data[index])
            }
            // The queue goes on: later requests complete as they come.
            #expect(try guest.write(queue: 0, sector: 64, data[0]) == BlockGuest.statusOK)
            #expect(try backEnd.imageBytes(offset: 64 * 512, count: 4096) == data[0])
        }

        @Test("GET_VRING_BASE is answered only once the requests in flight completed, with the index past them")
        func stopWaitsForRequestsInFlight() throws {
            let (backEnd, session, guest, device) = try Self.scene()
            defer { backEnd.stop() }
            let written = pattern(count: 8192, seed: 21)
            let write = try guest.submit(queue: 1, type: BlockRequestType.write.rawValue, sector: 200, outData: written)
            let flush = try guest.submit(queue: 1, type: BlockRequestType.flush.rawValue, sector: 0)
            // Both were served and are held: the worker sleeps with them outstanding.
            #expect(WorkerThreads.waitUntilKickTaken(guest.kicks[1].rawValue, queue: 1))
            let base = Locked<UInt16?>(nil)
            let front = UncheckedSendable(session)
            var stopper: TestThread?
            // The worker wakes for the stop, holds it while requests are outstanding, and sleeps
            // again without an answer.
            #expect(try WorkerThreads.turn(queue: 1) {
                stopper = try TestThread {
                    let index = try? front.value.stopRing(index: 1)
                    base.withLock { $0 = index }
                }
            })
            #expect(base.withLock { $0 } == nil)
            device.release()
            stopper?.join()
            #expect(base.withLock { $0 } == 2)
            let used = guest.queues[1].takeUsed()
            #expect(Set(used.map(\.id)) == [UInt32(write.head), UInt32(flush.head)])
            #expect(write.status.pointer.load(as: UInt8.self) == BlockRequestStatus.ok.rawValue)
            #expect(try backEnd.imageBytes(offset: 200 * 512, count: written.count) == written)
        }

        @Test("a completion for a request the ring does not have is ignored and logged; the ring is unchanged")
        func completionOfNoRequestIsIgnored() throws {
            let (backEnd, session, guest, device) = try Self.scene()
            defer { withExtendedLifetime(session) {} }  // the connection lives as long as its session
            defer { backEnd.stop() }
            device.release()
            #expect(try guest.write(queue: 0, sector: 8, pattern(count: 512, seed: 3)) == BlockGuest.statusOK)
            device.reportBogusCompletions(heads: [5, 77])
            let read = try guest.submit(queue: 0, type: BlockRequestType.read.rawValue, sector: 8, inLength: 512)
            let used = try Self.used(guest, queue: 0, count: 1)
            #expect(used.map(\.id) == [UInt32(read.head)])
            #expect(guest.queues[0].takeUsed().isEmpty)
            // Logged on the worker's thread before it published the read.
            #expect(backEnd.logs.all.filter { $0.message.contains("not outstanding; ignored") }.count == 2)
        }
    }
}
