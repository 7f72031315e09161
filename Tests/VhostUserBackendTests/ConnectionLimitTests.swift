import Testing
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore

extension DaemonBinaryTests {
    /// The daemon's limits on what one front end can make it hold (--max-mem-regions,
    /// --max-guest-memory; the IOTLB entry limit is IOMMUTests' "refusedUpdateAndCounts"): each
    /// refused with an error naming it, nothing mapped or leaked, the next front end served.
    @Suite("Connection limits")
    struct ConnectionLimitTests {
        /// Three 2 MiB regions, guest-physically apart.
        static func guest() throws -> BlockGuest {
            try BlockGuest(regions: (0..<3).map {
                GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(UInt64($0) << 30), size: 2 << 20)
            })
        }

        /// The daemon's footprint once its control plane is fully up (it served one front end),
        /// to compare with after a refusal.
        static func idleFootprint(_ daemon: ChildDaemon) throws -> ChildDaemon.Footprint {
            expectServesNewFrontEnd(daemon)
            return try #require(daemon.waitIdle())
        }

        @Test("GET_MAX_MEM_SLOTS reports --max-mem-regions; an ADD_MEM_REG past it closes the connection, unmapping all")
        func regionLimit() throws {
            let daemon = try ChildDaemon(extraArguments: ["--max-mem-regions=2"])
            defer { daemon.stop() }
            let idle = try Self.idleFootprint(daemon)
            let session = try daemon.connect()
            _ = try QEMUSequence.connect(session)
            #expect(session.maximumMemorySlots == 2)
            let guest = try Self.guest()
            let regions = try guest.memoryRegions
            try session.addMemoryRegion(regions[0].region, fd: regions[0].fd)
            try session.addMemoryRegion(regions[1].region, fd: regions[1].fd)
            #expect(daemon.memfdMappingCount == 2)
            let mark = daemon.logMark
            #expect(throws: FrontEndError.self) { try session.addMemoryRegion(regions[2].region, fd: regions[2].fd) }
            #expect(daemon.logEntry(containing: "tooManyRegions(count: 3, limit: 2)", after: mark, waitingUpTo: 5_000) != nil,
                    "\(daemon.transcript(after: mark))")
            session.socket.shutdown()
            #expect(daemon.waitIdle(matching: idle) == idle, "something leaked")
            expectServesNewFrontEnd(daemon)
        }

        @Test("a memory table larger than --max-guest-memory is refused before anything is mapped")
        func mappedBytesLimit() throws {
            let daemon = try ChildDaemon(extraArguments: ["--max-guest-memory=5m"])
            defer { daemon.stop() }
            let idle = try Self.idleFootprint(daemon)
            let session = try daemon.connect()
            let negotiated = try QEMUSequence.connect(session)
            try session.setFeatures(negotiated.features)
            let guest = try Self.guest()
            let regions = try guest.memoryRegions
            let mark = daemon.logMark
            // Two regions (4 MiB) would fit; three (6 MiB) do not.
            #expect(throws: FrontEndError.self) { try session.setMemoryTable(Array(regions[0..<3])) }
            #expect(daemon.logEntry(containing: "6291456 mapped bytes exceed the limit of 5242880", after: mark,
                                    waitingUpTo: 5_000) != nil, "\(daemon.transcript(after: mark))")
            #expect(daemon.memfdMappingCount == 0)
            session.socket.shutdown()
            #expect(daemon.waitIdle(matching: idle) == idle, "something leaked")
            expectServesNewFrontEnd(daemon)
        }
    }
}
