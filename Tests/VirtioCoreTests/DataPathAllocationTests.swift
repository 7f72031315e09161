#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostTestSupport
import VhostUserFrontEnd
import VirtioCore

/// Checks that the data path allocates nothing per request, with the allocation counter: every
/// traced round clean on the measuring thread. Opt-in, because the counter must be preloaded
/// (`make test` runs it alone):
///
///     VHOST_USER_ALLOCATION_LOG=$(mktemp) LD_PRELOAD=$(swift build --show-bin-path)/libVhostAllocationCounter.so \
///         swift test --skip-build --filter DataPathAllocationTests
@Suite(.enabled(if: AllocationCounter.isRequested))
struct DataPathAllocationTests {
    @Test func popCopyIOVectorsCompleteAndNotifyAllocateNothing() throws {
        let counter = try AllocationCounter()
        let fixture = try GuestFixture(queueSize: 256, features: [.indirectDescriptors, .eventIndex])
        let header = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 8)
        let vectors = UnsafeMutableBufferPointer<iovec>.allocate(capacity: 16)
        defer {
            header.deallocate()
            vectors.deallocate()
        }
        var popped = 0
        let rounds = try counter.rounds(prepare: {
            for index in 0..<128 {
                try fixture.driver.addChain(readable: [(gpa(0x8_0000 + UInt64(index) * 0x100), 16)],
                                            writable: [(gpa(0x9_0000), 512), (gpa(0xa_0000 + UInt64(index)), 1)],
                                            indirect: index % 2 == 0)
            }
            fixture.driver.publish()
        }, measure: {
            while let chain = try fixture.device.popAvailable(memory: fixture.memory) {
                _ = chain.copyReadableBytes(into: header)
                _ = chain.fillIOVectors(.writable, offset: 0, length: chain.writableByteCount - 1, into: vectors)
                for segment in chain.readable { header[0] ^= UInt8(truncatingIfNeeded: segment.length) }
                chain.lastWritableByte?.storeBytes(of: 0, as: UInt8.self)
                fixture.device.pushUsed(head: chain.headIndex, writtenLength: UInt32(chain.writableByteCount))
                popped += 1
            }
            fixture.device.publishUsed()
            _ = fixture.device.needsNotification()
            _ = fixture.device.enableNotifications()
        }, settle: {
            _ = fixture.driver.takeUsed()
        })
        #expect(popped == 4 * 128)
        #expect(rounds.count == 3)
        counter.record("DataPathAllocationTests", rounds)
        let clean = rounds.allSatisfy { $0.isClean }
        #expect(clean, "the measured thread's allocator calls per traced round: \(rounds)")
    }
}
