import Synchronization
import Testing
import VhostSystem
import VhostTestSupport
import VhostUserFrontEnd
import VirtioCore
import VirtioSpec

extension BackEndIntegration {
    /// INVALIDATE while requests are in flight behind a vIOMMU: each request in flight pins its
    /// buffers' IOVA ranges, and an INVALIDATE is acknowledged once no pin covers its range.
    @Suite("INVALIDATE with requests in flight")
    struct InvalidationPinTests {
        /// A vIOMMU scene whose device holds every completion until `release`.
        private static func scene() throws -> (IOMMUScene, DeferringDevice) {
            var deferring: DeferringDevice?
            let scene = try IOMMUScene(mapEverything: true, ioEngine: .sync) { block in
                let device = DeferringDevice(block)
                deferring = device
                return device
            }
            return (scene, try #require(deferring))
        }

        /// Sends INVALIDATEs for the page at `guestPhysical` on another thread; `acknowledged`
        /// turns true when the back end answered.
        private static func invalidateInBackground(_ scene: IOMMUScene, guestPhysical: UInt64,
                                                   acknowledged: Locked<Bool>) throws -> TestThread {
            let shared = UncheckedSendable(scene)
            return try TestThread {
                do {
                    try shared.value.unmap(guestPhysical: guestPhysical, size: IOMMUScene.page)
                    acknowledged.withLock { $0 = true }
                } catch {
                    Issue.record("INVALIDATE failed: \(error)")
                }
            }
        }

        /// Waits, bounded, until `flag` is true.
        private static func becomes(_ flag: Locked<Bool>, milliseconds: Int) -> Bool {
            let deadline = ContinuousClock.now + .milliseconds(milliseconds)
            while ContinuousClock.now < deadline {
                if flag.withLock({ $0 }) { return true }
                usleepMilliseconds(1)
            }
            return flag.withLock { $0 }
        }

        @Test("an INVALIDATE of a page a slow read in flight uses is acknowledged only after the read completes")
        func overlappingInvalidationWaits() throws {
            let (scene, device) = try Self.scene()
            defer { device.release() }
            let expected = pattern(count: 4096, seed: 41)
            try writeFile(scene.backEnd.imagePath, expected, offset: 16 * 512)
            let readPage = UInt64(10 << 20)
            let read = try scene.guest.submit(queue: 0, type: BlockRequestType.read.rawValue, sector: 16,
                                              inLength: 4096, inAddress: GuestPhysicalAddress(readPage))
            #expect(WorkerThreads.waitUntilKickTaken(scene.guest.kicks[0].rawValue, queue: 0))

            let acknowledged = Locked(false)
            var invalidation: TestThread?
            // The worker wakes for the new IOTLB, switches to it and sleeps again without answering.
            #expect(try WorkerThreads.turn(queue: 0) {
                invalidation = try Self.invalidateInBackground(scene, guestPhysical: readPage, acknowledged: acknowledged)
            })
            #expect(!Self.becomes(acknowledged, milliseconds: 200))

            // The queue is not stalled meanwhile: a write elsewhere is served (its completion is
            // held like every other, but its data is in the image).
            let written = pattern(count: 4096, seed: 42)
            let write = try scene.guest.submit(queue: 0, type: BlockRequestType.write.rawValue, sector: 64,
                                               outData: written, outAddress: GuestPhysicalAddress(11 << 20))
            #expect(WorkerThreads.waitUntilKickTaken(scene.guest.kicks[0].rawValue, queue: 0))
            #expect(try scene.backEnd.imageBytes(offset: 64 * 512, count: 4096) == written)
            #expect(!acknowledged.withLock { $0 })

            device.release()
            #expect(Self.becomes(acknowledged, milliseconds: 10_000))
            invalidation?.join()
            let done = try scene.guest.complete([read, write], milliseconds: 10_000)
            #expect(done.allSatisfy { $0.status == BlockGuest.statusOK })
            #expect(done[0].data == expected)
        }

        @Test("an INVALIDATE of pages no request in flight uses is acknowledged at once, on every queue")
        func disjointInvalidationIsImmediate() throws {
            let (scene, device) = try Self.scene()
            defer { device.release() }
            let reads = try (0..<2).map { queue in
                try scene.guest.submit(queue: queue, type: BlockRequestType.read.rawValue, sector: UInt64(queue) * 8,
                                       inLength: 4096, inAddress: GuestPhysicalAddress(UInt64(10 + queue) << 20))
            }
            for queue in 0..<2 {
                #expect(WorkerThreads.waitUntilKickTaken(scene.guest.kicks[queue].rawValue, queue: queue))
            }
            let acknowledged = Locked(false)
            let invalidation = try Self.invalidateInBackground(scene, guestPhysical: 12 << 20, acknowledged: acknowledged)
            #expect(Self.becomes(acknowledged, milliseconds: 5_000))
            device.release()
            invalidation.join()
            let done = try scene.guest.complete(reads, milliseconds: 10_000)
            #expect(done.allSatisfy { $0.status == BlockGuest.statusOK })
        }
    }
}
