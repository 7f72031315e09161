#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostUserFrontEnd
import VirtioCore

/// Checks that the data path allocates nothing per request, with glibc's malloc tracer. Opt-in,
/// because the tracer must be preloaded and sees every thread (run this test alone):
///
///     swift build --build-tests
///     MALLOC_TRACE=/tmp/virtio-mtrace.log \
///     LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 \
///     .build/debug/swift-vhost-userPackageTests.xctest --testing-library swift-testing \
///         --filter DataPathAllocationTests
@Suite(.enabled(if: getenv("MALLOC_TRACE") != nil && getenv("LD_PRELOAD") != nil))
struct DataPathAllocationTests {
    typealias TraceFunction = @convention(c) () -> Void

    @Test func popCopyIOVectorsCompleteAndNotifyAllocateNothing() throws {
        let tracePath = try #require(getenv("MALLOC_TRACE").map { String(cString: $0) })
        // The tracer lives in the preloaded debug library, which exports mtrace only under its
        // version (mtrace@GLIBC_2.2.5); a plain dlsym finds libc's stub (a no-op since 2.34).
        // The Glibc module does not import dlvsym, so it is looked up first.
        typealias VersionedLookup = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>, UnsafePointer<CChar>) -> UnsafeMutableRawPointer?
        let library = try #require(dlopen("libc_malloc_debug.so.0", RTLD_NOW | RTLD_NOLOAD))
        let dlvsym = try #require(dlsym(nil, "dlvsym").map { unsafeBitCast($0, to: VersionedLookup.self) })
        let start = try #require(dlvsym(library, "mtrace", "GLIBC_2.2.5").map { unsafeBitCast($0, to: TraceFunction.self) })
        let stop = try #require(dlvsym(library, "muntrace", "GLIBC_2.2.5").map { unsafeBitCast($0, to: TraceFunction.self) })

        let fixture = try GuestFixture(queueSize: 256, features: [.indirectDescriptors, .eventIndex])
        let header = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 8)
        let vectors = UnsafeMutableBufferPointer<iovec>.allocate(capacity: 16)
        defer {
            header.deallocate()
            vectors.deallocate()
        }
        var popped = 0
        // Round 0 warms up (lazy runtime metadata); rounds 1-3 are traced. The tracer also sees the
        // test runner's own threads, so a round may catch their allocations: a per-request
        // allocation shows in every round (hundreds of lines), noise does not.
        var windows: [Int] = []
        for round in 0..<4 {
            for index in 0..<128 {
                try fixture.driver.addChain(readable: [(gpa(0x8_0000 + UInt64(index) * 0x100), 16)],
                                            writable: [(gpa(0x9_0000), 512), (gpa(0xa_0000 + UInt64(index)), 1)],
                                            indirect: index % 2 == 0)
            }
            fixture.driver.publish()
            if round >= 1 { start() }
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
            if round >= 1 {
                stop()
                // mtrace truncates the file when it starts again: count this round now.
                let trace = try #require(Self.contents(of: tracePath))
                windows.append(trace.split(separator: "\n").filter { $0.contains(" + ") }.count)
            }
            _ = fixture.driver.takeUsed()
        }
        #expect(popped == 512)

        #expect(windows.count == 3)
        #expect(windows.min() == 0, "allocations per traced round: \(windows); see \(tracePath) for where they come from")
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
