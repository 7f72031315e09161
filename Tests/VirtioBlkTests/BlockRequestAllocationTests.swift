#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostUserFrontEnd
import VirtioCore
@testable import VirtioBlk

/// Checks that serving requests allocates nothing: pop, handle (every request type, and the
/// rejected ones), push and publish, traced with glibc's malloc tracer. Opt-in, because the
/// tracer must be preloaded and sees every thread (run this test alone):
///
///     swift build --build-tests
///     MALLOC_TRACE=/tmp/virtio-blk-mtrace.log \
///     LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 \
///     .build/debug/swift-vhost-userPackageTests.xctest --testing-library swift-testing \
///         --filter BlockRequestAllocationTests
@Suite(.enabled(if: getenv("MALLOC_TRACE") != nil && getenv("LD_PRELOAD") != nil))
struct BlockRequestAllocationTests {
    typealias TraceFunction = @convention(c) () -> Void

    @Test func servingRequestsAllocatesNothing() throws {
        let tracePath = try #require(getenv("MALLOC_TRACE").map { String(cString: $0) })
        // As in VirtioCoreTests' DataPathAllocationTests: the tracer is exported only under its
        // version by the preloaded debug library.
        typealias VersionedLookup = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>, UnsafePointer<CChar>) -> UnsafeMutableRawPointer?
        let library = try #require(dlopen("libc_malloc_debug.so.0", RTLD_NOW | RTLD_NOLOAD))
        let dlvsym = try #require(dlsym(nil, "dlvsym").map { unsafeBitCast($0, to: VersionedLookup.self) })
        let start = try #require(dlvsym(library, "mtrace", "GLIBC_2.2.5").map { unsafeBitCast($0, to: TraceFunction.self) })
        let stop = try #require(dlvsym(library, "muntrace", "GLIBC_2.2.5").map { unsafeBitCast($0, to: TraceFunction.self) })

        let fixture = try BlockFixture(queueSize: 64)
        #expect(fixture.device.writeConfiguration(offset: 32, bytes: [0]))   // writethrough: fdatasync per write too
        var served = 0
        // Round 0 warms up (lazy runtime metadata); rounds 1-3 are traced. The tracer also sees the
        // test runner's own threads, so a round may catch their allocations: a per-request
        // allocation shows in every round (hundreds of lines), noise does not.
        var windows: [Int] = []
        for round in 0..<4 {
            try offerOneOfEach(fixture)
            if round >= 1 { start() }
            let error = fixture.serve()
            if round >= 1 {
                stop()
                // mtrace truncates the file when it starts again: count this round now.
                let trace = try #require(Self.contents(of: tracePath))
                windows.append(trace.split(separator: "\n").filter { $0.contains(" + ") }.count)
            }
            #expect(error == nil)
            served += fixture.driver.takeUsed().count
        }
        #expect(served == 4 * 11)
        #expect(fixture.handler.statistics.malformed == 4)

        #expect(windows.count == 3)
        #expect(windows.min() == 0, "allocations per traced round: \(windows); see \(tracePath) for where they come from")
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

    private static func contents(of path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer.prefix(count)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
