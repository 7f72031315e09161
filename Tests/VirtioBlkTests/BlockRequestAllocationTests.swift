#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostTestSupport
import VhostUserFrontEnd
import VirtioCore
@testable import VirtioBlk

/// Checks that serving requests allocates nothing: pop, handle (every request type, and the
/// rejected ones), push and publish, counted with the allocation counter: every traced round
/// clean on the measuring thread. Opt-in, because the counter must be preloaded (`make test`
/// runs it alone):
///
///     VHOST_USER_ALLOCATION_LOG=$(mktemp) LD_PRELOAD=$(swift build --show-bin-path)/libVhostAllocationCounter.so \
///         swift test --skip-build --filter BlockRequestAllocationTests
@Suite(.enabled(if: AllocationCounter.isRequested))
struct BlockRequestAllocationTests {
    @Test func servingRequestsAllocatesNothing() throws {
        let counter = try AllocationCounter()
        let fixture = try BlockFixture(queueSize: 64)
        #expect(fixture.device.writeConfiguration(offset: 32, bytes: [0]))   // writethrough: fdatasync per write too
        var served = 0
        var failures: [VirtqueueError] = []
        let rounds = try counter.rounds(prepare: {
            try offerOneOfEach(fixture)
        }, measure: {
            if let error = fixture.serve() { failures.append(error) }
        }, settle: {
            served += fixture.driver.takeUsed().count
        })
        #expect(failures.isEmpty)
        #expect(served == 4 * 11)
        #expect(fixture.handler.statistics.malformed == 4)
        #expect(rounds.count == 3)
        counter.record("BlockRequestAllocationTests", rounds)
        let clean = rounds.allSatisfy { $0.isClean }
        #expect(clean, "the measured thread's allocator calls per traced round: \(rounds)")
    }

    /// Makes available one request of each kind, valid and rejected (11 chains).
    private func offerOneOfEach(_ fixture: BlockFixture) throws {
        let status = try fixture.statusBuffer()
        let data: (address: GuestPhysicalAddress, length: UInt32) = (gpa(BlockFixture.region1Start - 512), 2048)
        func header(_ type: UInt32, _ sector: UInt64, at offset: UInt64) throws -> (address: GuestPhysicalAddress, length: UInt32) {
            try fixture.header(type, sector: sector, at: BlockFixture.headerAddress + offset)
        }
        try fixture.driver.addChain(readable: [try header(Request.read, 8, at: 0)], writable: [data, status])
        try fixture.driver.addChain(readable: [try header(Request.write, 16, at: 0x10), data], writable: [status], indirect: true)
        try fixture.driver.addChain(readable: [try header(Request.flush, 0, at: 0x20)], writable: [status])
        try fixture.driver.addChain(readable: [try header(Request.getIdentifier, 0, at: 0x30)],
                                    writable: [(gpa(BlockFixture.dataAddress), 20), status])
        let segments = try fixture.segments([(100, 8, 0), (200, 8, 0)])
        try fixture.driver.addChain(readable: [try header(Request.discard, 0, at: 0x40), segments], writable: [status])
        try fixture.driver.addChain(readable: [try header(Request.writeZeroes, 0, at: 0x50), segments], writable: [status])
        try fixture.driver.addChain(readable: [try header(99, 0, at: 0x60)], writable: [status])
        try fixture.driver.addChain(readable: [try header(Request.read, 5000, at: 0x70)], writable: [data, status])
        try fixture.driver.addChain(readable: [(gpa(BlockFixture.headerAddress), 8)], writable: [status])
        try fixture.driver.addChain(readable: [try header(Request.write, 0, at: 0x80), data])
        try fixture.driver.addChain(readable: [try header(Request.discard, 0, at: 0x90), (segments.address, 24)], writable: [status])
        fixture.driver.publish()
    }

}
