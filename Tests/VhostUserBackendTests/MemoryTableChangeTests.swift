import Testing
import VhostSystem
import VhostTestSupport
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

extension BackEndIntegration {
    @Suite("Memory table changes while rings run")
    struct MemoryTableChangeTests {
        /// One more region of guest RAM, far above the first ones (as QEMU hot-plugs DIMMs).
        static func extraRAM(at gigabytes: UInt64, size: Int = 2 << 20) throws -> (GuestRAM, MemoryRegionDescription, OwnedFileDescriptor) {
            let ram = try GuestRAM(size: size, guestPhysicalStart: GuestPhysicalAddress(gigabytes << 30))
            let description = ram.regionDescriptions[0]
            let region = try MemoryRegionDescription(
                guestPhysicalAddress: description.guestPhysicalStart.rawValue, size: description.size,
                userAddress: description.frontEndVirtualStart.rawValue, mmapOffset: description.mmapOffset)
            return (ram, region, description.descriptor)
        }

        @Test("ADD_MEM_REG while rings run: requests use the new region; REM_MEM_REG of an unused region changes nothing else")
        func addAndRemoveRegionsWhileRunning() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd, memory: .addMemReg)
            let (session, guest) = (started.session, started.guest)
            #expect(try guest.write(sector: 0, pattern(count: 512, seed: 0)) == BlockGuest.statusOK)

            let (extra, extraRegion, extraFD) = try Self.extraRAM(at: 4)
            try session.addMemoryRegion(extraRegion, fd: extraFD.rawValue)
            let data = pattern(count: 16384, seed: 5)
            #expect(try guest.write(queue: 0, sector: 64, data, dataRAM: extra) == BlockGuest.statusOK)
            #expect(try guest.read(queue: 1, sector: 64, count: data.count, dataRAM: extra).data == data)
            #expect(try backEnd.imageBytes(offset: 64 * 512, count: data.count) == data)

            // A region no ring and no request uses comes and goes.
            let (spare, spareRegion, spareFD) = try Self.extraRAM(at: 8)
            try session.addMemoryRegion(spareRegion, fd: spareFD.rawValue)
            try session.removeMemoryRegion(spareRegion)
            // Once acknowledged, the back end no longer maps it (only the test's own mapping is left).
            let spareInode = try #require(DescriptorCensus.identity(of: spareFD.rawValue)).inode
            withExtendedLifetime(spare) {
                #expect(DescriptorCensus.memfdMappings(ofInode: spareInode) == 1)
            }

            let more = pattern(count: 4096, seed: 6)
            #expect(try guest.write(queue: 1, sector: 128, more, dataRAM: extra) == BlockGuest.statusOK)
            #expect(try guest.read(queue: 0, sector: 128, count: more.count).data == more)
            #expect(try QEMUSequence.stop(session, queueCount: 2) == [3, 2])
        }

        @Test("REM_MEM_REG of a region a request in flight uses is answered once it completes; the region stays mapped until then and the queue goes on meanwhile")
        func removalWaitsForItsRequestsInFlight() throws {
            var deferring: DeferringDevice?
            let backEnd = try InProcessBackEnd(ioEngine: .sync) { block in
                let device = DeferringDevice(block)
                deferring = device
                return device
            }
            defer { backEnd.stop() }
            let device = try #require(deferring)
            defer { device.release() }
            let started = try StartedFrontEnd.start(backEnd, memory: .addMemReg)
            let (session, guest) = (started.session, started.guest)
            let (extra, extraRegion, extraFD) = try Self.extraRAM(at: 4)
            try session.addMemoryRegion(extraRegion, fd: extraFD.rawValue)
            let expected = pattern(count: 4096, seed: 31)
            try writeFile(backEnd.imagePath, expected, offset: 40 * 512)
            // A read into the extra region, served and held by the device.
            let read = try guest.submit(queue: 0, type: BlockRequestType.read.rawValue, sector: 40, inLength: 4096,
                                        dataRAM: extra)
            #expect(WorkerThreads.waitUntilKickTaken(guest.kicks[0].rawValue, queue: 0))

            let answered = Locked(false)
            let front = UncheckedSendable(session)
            let removal = try TestThread {
                do {
                    try front.value.removeMemoryRegion(extraRegion)
                    answered.withLock { $0 = true }
                } catch {
                    Issue.record("REM_MEM_REG failed: \(error)")
                }
            }
            usleepMilliseconds(200)
            #expect(!answered.withLock { $0 })
            // Still mapped by the back end (and by the test): the read may still write into it.
            let inode = try #require(DescriptorCensus.identity(of: extraFD.rawValue)).inode
            #expect(DescriptorCensus.memfdMappings(ofInode: inode) == 2)
            // The queue is not stalled: a write through the base RAM is served meanwhile.
            let written = pattern(count: 4096, seed: 32)
            let write = try guest.submit(queue: 0, type: BlockRequestType.write.rawValue, sector: 80, outData: written)
            #expect(WorkerThreads.waitUntilKickTaken(guest.kicks[0].rawValue, queue: 0))
            #expect(try backEnd.imageBytes(offset: 80 * 512, count: 4096) == written)
            #expect(!answered.withLock { $0 })

            device.release()
            removal.join()
            #expect(answered.withLock { $0 })
            withExtendedLifetime(extra) {
                #expect(DescriptorCensus.memfdMappings(ofInode: inode) == 1)
            }
            let done = try guest.complete([read, write], dataRAM: extra)
            #expect(done.allSatisfy { $0.status == BlockGuest.statusOK })
            #expect(done[0].data == expected)
        }

        @Test("after REM_MEM_REG, a request into the removed region breaks only its queue")
        func requestIntoRemovedRegionBreaksTheQueue() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd, memory: .addMemReg)
            let (session, guest) = (started.session, started.guest)
            let (extra, extraRegion, extraFD) = try Self.extraRAM(at: 4)
            try session.addMemoryRegion(extraRegion, fd: extraFD.rawValue)
            #expect(try guest.write(sector: 3, pattern(count: 512, seed: 3), dataRAM: extra) == BlockGuest.statusOK)
            try session.removeMemoryRegion(extraRegion)

            let mark = backEnd.logMark
            try guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 3,
                             outData: pattern(count: 512, seed: 4), dataRAM: extra)
            #expect(guest.errorSignalled(queue: 0, milliseconds: 5_000))
            #expect(backEnd.logEntry(containing: "addressNotInGuestMemory", after: mark, waitingUpTo: 1_000) != nil,
                    "\(backEnd.transcript(after: mark))")
            #expect(try backEnd.imageBytes(offset: 3 * 512, count: 512) == pattern(count: 512, seed: 3))
            // Queue 1 is unaffected.
            #expect(try guest.write(queue: 1, sector: 9, pattern(count: 512, seed: 9)) == BlockGuest.statusOK)
        }

        @Test("SET_MEM_TABLE while rings run: the rings move to the new mappings and keep their indices")
        func setMemTableWhileRunning() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd)
            let (session, guest) = (started.session, started.guest)
            #expect(try guest.write(sector: 0, pattern(count: 512, seed: 0)) == BlockGuest.statusOK)

            let (extra, extraRegion, extraFD) = try Self.extraRAM(at: 4)
            try session.setMemoryTable(try guest.memoryRegions + [(extraRegion, extraFD.rawValue)])
            let data = pattern(count: 8192, seed: 8)
            #expect(try guest.write(sector: 16, data, dataRAM: extra) == BlockGuest.statusOK)
            #expect(try guest.read(queue: 1, sector: 16, count: data.count).data == data)

            // Back to the original table: the extra region's mapping is released.
            try session.setMemoryTable(try guest.memoryRegions)
            let extraInode = try #require(DescriptorCensus.identity(of: extraFD.rawValue)).inode
            #expect(DescriptorCensus.memfdMappings(ofInode: extraInode) == 1)
            #expect(try guest.read(sector: 16, count: data.count).data == data)
            #expect(try QEMUSequence.stop(session, queueCount: 2) == [3, 1])
        }
    }
}
