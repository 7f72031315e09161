#if canImport(Glibc)
import Glibc
#endif
import StorageIO
import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore
import VhostUserBackend
import VirtioSpec
@testable import VirtioBlk

/// `--cache`: how the image is opened, what the device offers, what FLUSH does, and requests
/// whose buffers O_DIRECT cannot take as they are.
@Suite("Cache modes")
struct CacheModeTests {
    @Test("each mode opens the image as QEMU's does and sets the writeback byte and CONFIG_WCE accordingly",
          arguments: BlockCacheMode.allCases)
    func openingAndConfiguration(mode: BlockCacheMode) throws {
        let fixture = try BlockFixture(cache: mode)
        let flags = fcntl(fixture.image.descriptor.rawValue, F_GETFL)
        #expect((flags & OwnedFileDescriptor.directIOFlag != 0) == (mode == .none || mode == .directsync))
        #expect((flags & O_DSYNC != 0) == (mode == .directsync))
        // /tmp is ext4 on these machines: O_DIRECT works and the kernel states its alignment.
        #expect((fixture.image.directAlignment != nil) == mode.bypassesPageCache)
        #expect(fixture.device.configuration.writeback == (mode == .directsync ? 0 : 1))
        #expect(fixture.device.features.contains(.configWCE) == (mode != .directsync))
        #expect(fixture.device.features.contains(.flush))
        #expect(fixture.device.writeConfiguration(offset: BlockDeviceConfiguration.writebackOffset, bytes: [0]) == (mode != .directsync))
        fixture.device.reset()
        #expect(fixture.device.configuration.writeback == (mode == .directsync ? 0 : 1))
    }

    @Test("FLUSH is an fdatasync except with --cache=unsafe; writethrough syncs each write unless O_DSYNC already does",
          arguments: BlockCacheMode.allCases)
    func flushAndWritethrough(mode: BlockCacheMode) throws {
        let engine = try ScriptedEngine()
        let fixture = try BlockFixture(queueSize: 16, scripted: engine, cache: mode)
        _ = try fixture.submit(readable: [try fixture.header(BlockRequestType.flush.rawValue)], writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == BlockRequestStatus.ok.rawValue)
        #expect(engine.synchronizations == (mode == .unsafe ? 0 : 1))
        // The driver's writethrough (the host's, for directsync).
        _ = fixture.device.writeConfiguration(offset: BlockDeviceConfiguration.writebackOffset, bytes: [0])
        let data = try fixture.buffer(BlockFixture.dataAddress, 4096, fill: 0x3C)
        _ = try fixture.submit(readable: [try fixture.header(BlockRequestType.write.rawValue, sector: 8), data],
                               writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == BlockRequestStatus.ok.rawValue)
        let expected = (mode == .unsafe ? 0 : 1) + (mode == .writeback || mode == .none ? 1 : 0)
        #expect(engine.synchronizations == expected)
    }

    @Test("O_DIRECT: buffers at odd addresses and pieces of odd lengths are bounced; the bytes are exact both ways",
          arguments: [BlockCacheMode.none, .directsync], [IOEngineKind.ioUring, .sync])
    func unalignedBuffersAreBounced(mode: BlockCacheMode, engine: IOEngineKind) throws {
        let fixture = try BlockFixture(engine: engine, cache: mode)
        let payload = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        // 4096 bytes in pieces of 100 (at an odd address), 1000, and 2996 crossing into region 1.
        let pieces: [(UInt64, Int)] = [(BlockFixture.dataAddress + 1, 100), (BlockFixture.dataAddress + 0x2001, 1000),
                                       (BlockFixture.region1Start - 1000, 2996)]
        var offset = 0
        for (address, length) in pieces {
            try fixture.ram.write(Array(payload[offset..<offset + length]), at: gpa(address))
            offset += length
        }
        let write = try fixture.submit(readable: [try fixture.header(BlockRequestType.write.rawValue, sector: 24)]
                                           + pieces.map { (gpa($0.0), UInt32($0.1)) },
                                       writable: [try fixture.statusBuffer()])
        #expect(write.length == 1)
        #expect(try fixture.status() == BlockRequestStatus.ok.rawValue)
        #expect(fixture.imageBytes(offset: 24 * 512, count: 4096) == payload)
        // Around it the image is untouched.
        #expect(fixture.imageBytes(offset: 23 * 512, count: 512) == BlockFixture.pattern(offset: 23 * 512, count: 512))
        #expect(fixture.imageBytes(offset: 32 * 512, count: 512) == BlockFixture.pattern(offset: 32 * 512, count: 512))
        for (address, length) in pieces { try fixture.ram.fill(0, at: gpa(address), length: length) }
        let read = try fixture.submit(readable: [try fixture.header(BlockRequestType.read.rawValue, sector: 24)],
                                      writable: pieces.map { (gpa($0.0), UInt32($0.1)) } + [try fixture.statusBuffer()])
        #expect(read.length == 4097)
        #expect(try fixture.status() == BlockRequestStatus.ok.rawValue)
        var received: [UInt8] = []
        for (address, length) in pieces { received += try fixture.ram.read(length, at: gpa(address)) }
        #expect(received == payload)
    }

    @Test("O_DIRECT with aligned buffers goes through the engine, not the bounce buffer")
    func alignedBuffersGoDirect() throws {
        let engine = try ScriptedEngine()
        let fixture = try BlockFixture(queueSize: 16, scripted: engine, cache: .none)
        let data = try fixture.buffer(BlockFixture.dataAddress, 8192, fill: 0x77)
        _ = try fixture.submit(readable: [try fixture.header(BlockRequestType.write.rawValue, sector: 40), data],
                               writable: [try fixture.statusBuffer()])
        #expect(engine.transfers == 1)
        #expect(fixture.imageBytes(offset: 40 * 512, count: 8192) == [UInt8](repeating: 0x77, count: 8192))
        let odd = try fixture.buffer(BlockFixture.dataAddress + 3, 512, fill: 0x11)
        _ = try fixture.submit(readable: [try fixture.header(BlockRequestType.write.rawValue, sector: 40), odd],
                               writable: [try fixture.statusBuffer()])
        #expect(engine.transfers == 1)
        #expect(fixture.imageBytes(offset: 40 * 512, count: 512) == [UInt8](repeating: 0x11, count: 512))
    }

    @Test("through the page cache, transfers are done at once when that needs no waiting (RWF_NOWAIT), always where a direction has none")
    func pageCacheTransfersAtOnce() throws {
        // ext4 (/tmp here) has RWF_NOWAIT for buffered reads only; tmpfs (/dev/shm) for neither.
        for (directory, reads, writes) in [("/tmp", FileStorageQueue.InlineTransfers.withoutWaiting, FileStorageQueue.InlineTransfers.always),
                                           ("/dev/shm", .always, .always)] {
            let fixture = try BlockFixture(engine: .ioUring, imageDirectory: directory)
            #expect(fixture.fileQueue?.inlineReads == .withoutWaiting && fixture.fileQueue?.inlineWrites == .withoutWaiting)
            // The image was just written: its pages are cached, so both complete in submit.
            let data = try fixture.buffer(BlockFixture.dataAddress, 4096, fill: 0x5D)
            try fixture.driver.addChain(readable: [try fixture.header(BlockRequestType.write.rawValue, sector: 8), data],
                                        writable: [try fixture.statusBuffer()])
            try fixture.driver.addChain(readable: [try fixture.header(BlockRequestType.read.rawValue, sector: 8,
                                                                      at: BlockFixture.headerAddress + 16)],
                                        writable: [try fixture.buffer(BlockFixture.dataAddress + 0x1000, 4096),
                                                   try fixture.statusBuffer(at: BlockFixture.statusAddress + 1)])
            fixture.driver.publish()
            for expected: UInt32 in [1, 4097] {
                let chain = try #require(try fixture.queue.popAvailable(memory: fixture.memory))
                #expect(fixture.handler.submit(chain, token: RequestToken(head: chain.headIndex)) == .completed(writtenLength: expected),
                        "\(directory)")
                let pushed = fixture.queue.pushUsed(head: chain.headIndex, writtenLength: expected)
                #expect(pushed)
            }
            #expect(try fixture.status() == BlockRequestStatus.ok.rawValue)
            #expect(try fixture.status(at: BlockFixture.statusAddress + 1) == BlockRequestStatus.ok.rawValue)
            #expect(fixture.fileQueue?.inlineReads == reads, "\(directory)")
            #expect(fixture.fileQueue?.inlineWrites == writes, "\(directory)")
            #expect(try fixture.ram.read(4096, at: gpa(BlockFixture.dataAddress + 0x1000)) == [UInt8](repeating: 0x5D, count: 4096))
        }
    }
}
