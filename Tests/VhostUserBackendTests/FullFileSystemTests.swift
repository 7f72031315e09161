import Testing
import VhostSystem

extension BackEndIntegration {
    /// The image on a file system that fills up: a real ext4, loop-mounted, and the daemon's
    /// real binary with each engine and cache mode.
    @Suite("A full file system under the image")
    struct FullFileSystemTests {
        @Test("writes that find no space answer IOERR; the daemon stays up, what was written reads back, and writes succeed again once space is freed",
              arguments: [[], ["--cache=none"], ["--aio=threads"], ["--aio=sync", "--cache=directsync"]])
        func writesToAFullFileSystem(arguments: [String]) throws {
            let fileSystem = try LoopMountedFileSystem(megabytes: 16)
            defer { withExtendedLifetime(fileSystem) {} }  // unmounted last, once the daemon is gone
            let image = fileSystem.mountPoint + "/disk.img"
            try makeSparseFile(at: image, size: 64 << 20)
            try fileSystem.fill(leaving: 256 << 10)
            let daemon = try ChildDaemon(image: image, extraArguments: arguments)
            defer { daemon.stop() }
            let started = try StartedFrontEnd.start(daemon)
            defer { withExtendedLifetime(started) {} }

            // 4 KiB writes 64 KiB apart, each allocating a block, until one finds no space: at
            // most 1 MiB of them for the 256 KiB left.
            var written: [(sector: UInt64, data: [UInt8])] = []
            var failedSector: UInt64?
            for index in 0..<256 as Range<UInt64> {
                let sector = index * 128
                let data = pattern(count: 4096, seed: sector + 1)
                let status = try started.guest.write(sector: sector, data)
                if status == BlockGuest.statusOK {
                    written.append((sector, data))
                } else {
                    #expect(status == BlockGuest.statusIOError)
                    failedSector = sector
                    break
                }
            }
            let failed = try #require(failedSector, "256 writes found space: \(fileSystem.availableBytes) bytes left")
            #expect(!written.isEmpty)
            #expect(daemon.process.isRunning)
            // Nothing written before is lost or damaged, through the device and in the file.
            for (sector, data) in written {
                let read = try started.guest.read(sector: sector, count: data.count)
                #expect(read.status == BlockGuest.statusOK)
                #expect(read.data == data)
            }
            #expect(try readFile(image, offset: Int(written[0].sector) * 512, count: 4096) == written[0].data)

            try fileSystem.removeFiller()
            let retry = pattern(count: 4096, seed: 99)
            #expect(try started.guest.write(sector: failed, retry) == BlockGuest.statusOK)
            #expect(try started.guest.read(sector: failed, count: 4096).data == retry)
            #expect(try readFile(image, offset: Int(failed) * 512, count: 4096) == retry)
            #expect(daemon.process.isRunning)
        }
    }
}
