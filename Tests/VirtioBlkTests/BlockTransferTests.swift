#if canImport(Glibc)
import Glibc
#endif
import StorageIO
import Testing
import VhostUserFrontEnd
import VirtioCore
import VirtioSpec
@testable import VirtioBlk

/// Reads, writes and flushes through an I/O engine that completes them later: out of order,
/// in pieces, after retries, or failed.
@Suite("virtio-blk transfers through the I/O engine")
struct BlockTransferTests {
    /// Offers `count` requests at once (writes of 4 KiB to sectors 8·i, or reads of them into
    /// separate buffers), each with its own header and status byte.
    private static func offer(_ fixture: BlockFixture, _ type: BlockRequestType, count: Int,
                              data: (Int) -> [UInt8] = { _ in [] }) throws -> [(status: UInt64, buffer: UInt64)] {
        var placed: [(status: UInt64, buffer: UInt64)] = []
        for index in 0..<count {
            let header = try fixture.header(type.rawValue, sector: UInt64(8 * index), at: 0x4_0000 + UInt64(index) * 16)
            let status = try fixture.statusBuffer(at: 0x4_1000 + UInt64(index))
            let buffer = BlockFixture.dataAddress + UInt64(index) * 0x1000
            if type == .write {
                try fixture.ram.write(data(index), at: gpa(buffer))
                try fixture.driver.addChain(readable: [header, (gpa(buffer), 4096)], writable: [status])
            } else {
                try fixture.driver.addChain(readable: [header], writable: [try fixture.buffer(buffer, 4096), status])
            }
            placed.append((0x4_1000 + UInt64(index), buffer))
        }
        fixture.driver.publish()
        return placed
    }

    private static func block(_ index: Int) -> [UInt8] {
        (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index &* 7) }
    }

    @Test("completions reported newest first: every request gets its own data, status and used length")
    func outOfOrderCompletions() throws {
        let engine = try ScriptedEngine()
        engine.newestFirst = true
        let fixture = try BlockFixture(queueSize: 32, scripted: engine)
        let writes = try Self.offer(fixture, .write, count: 6, data: Self.block)
        #expect(fixture.serve() == nil)
        let writesUsed = fixture.driver.takeUsed()
        #expect(writesUsed.count == 6)
        #expect(writesUsed.map(\.id) == writesUsed.map(\.id).sorted().reversed())
        for (index, write) in writes.enumerated() {
            #expect(try fixture.status(at: write.status) == BlockRequestStatus.ok.rawValue)
            #expect(fixture.imageBytes(offset: index * 4096, count: 4096) == Self.block(index))
        }
        let reads = try Self.offer(fixture, .read, count: 6)
        #expect(fixture.serve() == nil)
        #expect(fixture.driver.takeUsed().allSatisfy { $0.length == 4097 })
        for (index, read) in reads.enumerated() {
            #expect(try fixture.status(at: read.status) == BlockRequestStatus.ok.rawValue)
            #expect(try fixture.ram.read(4096, at: gpa(read.buffer)) == Self.block(index))
        }
    }

    @Test("short transfers are continued where they stopped, across iovecs, to the end")
    func shortTransfersContinue() throws {
        let engine = try ScriptedEngine()
        engine.maximumTransfer = 700  // not a multiple of anything the request is made of
        let fixture = try BlockFixture(queueSize: 16, scripted: engine)
        _ = try Self.offer(fixture, .write, count: 2, data: Self.block)
        #expect(fixture.serve() == nil)
        #expect(engine.transfers == 2 * 6)  // ceil(4096 / 700) each
        #expect(fixture.imageBytes(offset: 4096, count: 4096) == Self.block(1))
        let reads = try Self.offer(fixture, .read, count: 2)
        #expect(fixture.serve() == nil)
        #expect(try fixture.ram.read(4096, at: gpa(reads[0].buffer)) == Self.block(0))
        #expect(try fixture.ram.read(4096, at: gpa(reads[1].buffer)) == Self.block(1))
        #expect(fixture.driver.takeUsed().count == 4)
    }

    @Test("EAGAIN and EINTR are retried; ENOSPC, EIO and a transfer that moves nothing fail with IOERR; the queue goes on")
    func errorsAndRetries() throws {
        let engine = try ScriptedEngine()
        let fixture = try BlockFixture(queueSize: 16, scripted: engine)
        engine.injected = [-EAGAIN, -EINTR, -EAGAIN]
        let retried = try Self.offer(fixture, .write, count: 1, data: Self.block)
        #expect(fixture.serve() == nil)
        #expect(try fixture.status(at: retried[0].status) == BlockRequestStatus.ok.rawValue)
        #expect(fixture.imageBytes(offset: 0, count: 4096) == Self.block(0))
        #expect(fixture.driver.takeUsed().map(\.length) == [1])
        for failure in [-ENOSPC, -EIO, 0] {
            engine.injected = [Int32(failure)]
            let failed = try Self.offer(fixture, failure == 0 ? .read : .write, count: 1, data: Self.block)
            #expect(fixture.serve() == nil)
            #expect(try fixture.status(at: failed[0].status) == BlockRequestStatus.ioError.rawValue, "result \(failure)")
            #expect(fixture.driver.takeUsed().map(\.length) == [1])
        }
        #expect(fixture.handler.statistics.errors == 3)
        let after = try Self.offer(fixture, .read, count: 1)
        #expect(fixture.serve() == nil)
        #expect(try fixture.ram.read(4096, at: gpa(after[0].buffer)) == Self.block(0))
    }

    @Test("writethrough: the write's fdatasync runs before the request completes; a failed one is IOERR")
    func writethroughSynchronizes() throws {
        let engine = try ScriptedEngine()
        let fixture = try BlockFixture(queueSize: 16, scripted: engine)
        #expect(fixture.device.writeConfiguration(offset: BlockDeviceConfiguration.writebackOffset, bytes: [0]))
        let ok = try Self.offer(fixture, .write, count: 1, data: Self.block)
        #expect(fixture.serve() == nil)
        #expect(engine.synchronizations == 1)
        #expect(try fixture.status(at: ok[0].status) == BlockRequestStatus.ok.rawValue)
        _ = fixture.driver.takeUsed()
        engine.injected = []
        let failing = try Self.offer(fixture, .write, count: 1, data: Self.block)
        engine.maximumTransfer = .max
        // The write goes through; its fdatasync fails.
        let original = engine.synchronizations
        engine.injectOnSynchronize = -EIO
        #expect(fixture.serve() == nil)
        #expect(engine.synchronizations == original + 1)
        #expect(try fixture.status(at: failing[0].status) == BlockRequestStatus.ioError.rawValue)
    }

    @Test("a FLUSH goes to the engine as an fdatasync", arguments: [false, true])
    func flushSynchronizes(fails: Bool) throws {
        let engine = try ScriptedEngine()
        let fixture = try BlockFixture(queueSize: 16, scripted: engine)
        if fails { engine.injectOnSynchronize = -EIO }
        let used = try fixture.submit(readable: [try fixture.header(BlockRequestType.flush.rawValue)],
                                      writable: [try fixture.statusBuffer()])
        #expect(engine.synchronizations == 1)
        #expect(used.length == 1)
        #expect(try fixture.status() == (fails ? BlockRequestStatus.ioError : .ok).rawValue)
    }

    @Test("an engine with no room (a ring qcow2's transfers filled): reads, writes and flushes are served at once instead, nothing fails")
    func fullEngineServesAtOnce() throws {
        let engine = try ScriptedEngine()
        let fixture = try BlockFixture(queueSize: 16, scripted: engine)
        engine.refusals = 3
        _ = try Self.offer(fixture, .write, count: 2, data: Self.block)
        #expect(fixture.serve() == nil)
        #expect(fixture.driver.takeUsed().map(\.length) == [1, 1])
        _ = try fixture.submit(readable: [try fixture.header(BlockRequestType.flush.rawValue, at: 0x4_0100)],
                               writable: [try fixture.statusBuffer(at: 0x4_1100)])
        #expect(try fixture.status(at: 0x4_1100) == BlockRequestStatus.ok.rawValue)
        #expect(engine.refusals == 0 && engine.transfers == 0 && engine.synchronizations == 0)
        for index in 0..<2 { #expect(fixture.imageBytes(offset: index * 4096, count: 4096) == Self.block(index)) }
        let reads = try Self.offer(fixture, .read, count: 2)
        #expect(fixture.serve() == nil)
        for (index, read) in reads.enumerated() {
            #expect(try fixture.status(at: read.status) == BlockRequestStatus.ok.rawValue)
            #expect(try fixture.ram.read(4096, at: gpa(read.buffer)) == Self.block(index))
        }
    }
}
