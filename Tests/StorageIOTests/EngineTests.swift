#if canImport(Glibc)
import Glibc
#endif
import StorageIO
import Testing
import VhostSystem

/// The engines on a real file: io_uring (when this kernel offers it: `make test` machines do)
/// the thread pool, and synchronous I/O.
@Suite("I/O engines")
struct EngineTests {
    private static let engines: [IOEngineKind] = [.ioUring, .threads, .sync]

    /// A temporary file of `size` zero bytes, open read-write, unlinked at once.
    private static func scratchFile(size: Int) throws -> OwnedFileDescriptor {
        var template = Array("/tmp/storageio-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        try #require(fd >= 0)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        try #require(ftruncate(fd, off_t(size)) == 0)
        return OwnedFileDescriptor(adopting: fd)
    }

    /// Waits for and reaps at least `count` completions.
    private static func collect(_ engine: any IOEngine, count: Int) throws -> [(tag: UInt64, result: Int32)] {
        let completions = IOCompletions(capacity: 256)
        var collected: [(tag: UInt64, result: Int32)] = []
        while collected.count < count {
            if let notifier = engine.completionNotifier, !engine.prepareToSleep() {
                var entry = pollfd(fd: notifier, events: Int16(POLLIN), revents: 0)
                try #require(poll(&entry, 1, 10_000) == 1, "completions never came")
            }
            completions.removeAll()
            let reaped = engine.reap(into: completions)
            try #require(reaped > 0 || engine.completionNotifier != nil)
            for index in 0..<completions.count { collected.append(completions[index]) }
        }
        return collected
    }

    @Test("64 writes then 64 reads in flight at once, one submit each, every tag answered with its bytes",
          arguments: engines)
    func manyInFlight(kind: IOEngineKind) throws {
        let file = try Self.scratchFile(size: 64 * 4096)
        let engine = try IOEngineSelection.make(kind, entries: 65, file: file.rawValue)
        #expect(engine.kind == kind)
        let buffers = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 4096, alignment: 4096)
        defer { buffers.deallocate() }
        for index in 0..<(64 * 4096) { buffers[index] = UInt8(truncatingIfNeeded: index / 4096 &+ index) }
        let vectors = UnsafeMutableBufferPointer<iovec>.allocate(capacity: 64)
        defer { vectors.deallocate() }
        for slot in 0..<64 { vectors[slot] = iovec(iov_base: buffers.baseAddress! + slot * 4096, iov_len: 4096) }
        for slot in 0..<64 {
            #expect(engine.write(file.rawValue, vectors.baseAddress! + slot, count: 1, offset: UInt64(slot) * 4096, tag: UInt64(slot)))
        }
        engine.submit()
        let written = try Self.collect(engine, count: 64)
        #expect(Set(written.map(\.tag)) == Set(0..<64))
        #expect(written.allSatisfy { $0.result == 4096 })
        let expected = Array(buffers)
        buffers.initializeMemory(as: UInt8.self, repeating: 0)
        for slot in 0..<64 {
            #expect(engine.read(file.rawValue, vectors.baseAddress! + slot, count: 1, offset: UInt64(slot) * 4096, tag: UInt64(100 + slot)))
        }
        #expect(engine.synchronize(file.rawValue, tag: 999))
        engine.submit()
        let read = try Self.collect(engine, count: 65)
        #expect(Set(read.map(\.tag)) == Set(100..<164).union([999]))
        // The 66th operation does not fit before a submit.
        for tag in 0..<65 { _ = engine.synchronize(file.rawValue, tag: UInt64(tag)) }
        if kind != .ioUring { #expect(!engine.synchronize(file.rawValue, tag: 65)) }
        engine.submit()
        _ = try Self.collect(engine, count: 65)
        #expect(read.allSatisfy { $0.result == ($0.tag == 999 ? 0 : 4096) })
        #expect(Array(buffers) == expected)
    }

    @Test("a failing operation answers a negative errno; a read past the end answers 0 bytes", arguments: engines)
    func failures(kind: IOEngineKind) throws {
        let file = try Self.scratchFile(size: 4096)
        let engine = try IOEngineSelection.make(kind, entries: 8, file: file.rawValue)
        var byte: UInt8 = 0
        var vector = withUnsafeMutablePointer(to: &byte) { iovec(iov_base: $0, iov_len: 1) }
        let readOnly = try OwnedFileDescriptor.open("/dev/null", flags: O_RDONLY)
        withUnsafePointer(to: &vector) { vectors in
            #expect(engine.write(readOnly.rawValue, vectors, count: 1, offset: 0, tag: 1))
            #expect(engine.read(file.rawValue, vectors, count: 1, offset: 8192, tag: 2))
            engine.submit()
        }
        let results = Dictionary(uniqueKeysWithValues: try Self.collect(engine, count: 2).map { ($0.tag, $0.result) })
        #expect(results[1] == -EBADF)
        #expect(results[2] == 0)
    }

    @Test("completions beyond the caller's buffer wait for the next reap; an armed notifier or prepareToSleep says so",
          arguments: [IOEngineKind.ioUring, .threads])
    func partialReap(kind: IOEngineKind) throws {
        let file = try Self.scratchFile(size: 4096)
        let engine = try IOEngineSelection.make(kind, entries: 16, file: file.rawValue)
        for tag in 0..<10 { #expect(engine.synchronize(file.rawValue, tag: UInt64(tag))) }
        engine.submit()
        let notifier = try #require(engine.completionNotifier)
        var tags: [UInt64] = []
        let small = IOCompletions(capacity: 3)
        while tags.count < 10 {
            // As a queue worker: arm the notifier before sleeping, or reap what already waits.
            if !engine.prepareToSleep() {
                var entry = pollfd(fd: notifier, events: Int16(POLLIN), revents: 0)
                try #require(poll(&entry, 1, 10_000) == 1, "the notifier went quiet with \(10 - tags.count) completions left")
            }
            small.removeAll()
            _ = engine.reap(into: small)
            #expect(small.count <= 3)
            for index in 0..<small.count { tags.append(small[index].tag) }
        }
        #expect(Set(tags) == Set(0..<10))
        #expect(!engine.hasCompletions)
    }

    @Test("io_uring is available on this machine kind, so the default engine is io_uring")
    func preferredIsIOUring() {
        #expect(IOEngineSelection.unavailability(of: .ioUring) == nil)
        #expect(IOEngineSelection.preferred == .ioUring)
    }
}
