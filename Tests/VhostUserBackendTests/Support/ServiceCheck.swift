import Testing
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// A front end connected and started the way QEMU 7.2 does it, with its guest.
struct StartedFrontEnd {
    let session: FrontEndSession
    let guest: BlockGuest
    let features: VirtioFeatures

    /// Connects to `backEnd`, negotiates, installs a small guest's memory and starts every ring.
    static func start(_ backEnd: BackEndUnderTest, memory: QEMUSequence.MemoryTableStyle = .setMemTable,
                      regions: [GuestRAM.RegionSpec] = [GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(0), size: 2 << 20)],
                      enable: Bool = true) throws -> StartedFrontEnd {
        let session = try backEnd.connect()
        let negotiated = try QEMUSequence.connect(session)
        let guest = try BlockGuest(regions: regions, eventIndex: negotiated.features.contains(.eventIndex))
        try QEMUSequence.start(session, guest: guest, features: negotiated.features, memory: memory, enable: enable)
        return StartedFrontEnd(session: session, guest: guest, features: negotiated.features)
    }
}

/// Checks that `backEnd` serves a new front end completely: the QEMU 7.2 handshake, one write
/// read back through the device and from the host, and a clean stop (GET_VRING_BASE = 2).
func expectServesNewFrontEnd(_ backEnd: BackEndUnderTest, sector: UInt64 = 4096,
                             sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let started = try StartedFrontEnd.start(backEnd)
        let data = pattern(count: 4096, seed: sector)
        #expect(try started.guest.write(sector: sector, data) == BlockGuest.statusOK, sourceLocation: sourceLocation)
        #expect(try started.guest.read(sector: sector, count: data.count).data == data, sourceLocation: sourceLocation)
        #expect(try readFile(backEnd.imagePath, offset: Int(sector) * 512, count: data.count) == data,
                sourceLocation: sourceLocation)
        #expect(try QEMUSequence.stop(started.session, queueCount: started.guest.queues.count) == [2, 0],
                sourceLocation: sourceLocation)
    } catch {
        Issue.record("a new front end was not served: \(error)", sourceLocation: sourceLocation)
    }
}
