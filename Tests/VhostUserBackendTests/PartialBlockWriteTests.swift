import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore
import VirtioSpec

extension BackEndIntegration {
    /// `--cache=none` on a disk with 4 KiB sectors: O_DIRECT needs 4 KiB offsets and lengths,
    /// the guest writes 512-byte sectors, so a write that covers part of a 4 KiB block is a
    /// read-modify-write of the block.
    @Suite("Partial-block writes on a 4 KiB-sector disk")
    struct PartialBlockWriteTests {
        @Test("two queues writing the two halves of the same 4 KiB blocks at once: every half lands")
        func concurrentHalvesOfOneBlockBothLand() throws {
            let fileSystem = try LoopMountedFileSystem(megabytes: 64, sectorSize: 4096)
            defer { withExtendedLifetime(fileSystem) {} }  // unmounted last, once the daemon is gone
            let image = fileSystem.mountPoint + "/disk.img"
            try makeSparseFile(at: image, size: 16 << 20)
            let daemon = try ChildDaemon(image: image, extraArguments: ["--cache=none"])
            defer { daemon.stop() }
            let started = try StartedFrontEnd.start(
                daemon, regions: [GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(0), size: 16 << 20)])
            defer { withExtendedLifetime(started) {} }
            let guest = started.guest
            // The disk's 4 KiB alignment, from statx: 2 KiB writes are read-modify-writes.
            #expect(daemon.logEntry(containing: "offset 4096", after: 0, waitingUpTo: 1_000) != nil, "\(daemon.transcript(after: 0))")

            let blocksPerRound = 32
            var lost: [Int] = []
            for round in 0..<16 {
                var pending: [[BlockGuest.Pending]] = [[], []]
                var expected: [[UInt8]] = []
                for index in 0..<blocksPerRound {
                    let block = round * blocksPerRound + index
                    let sector = UInt64(block) * 8
                    let halves = [pattern(count: 2048, seed: sector * 2 + 1), pattern(count: 2048, seed: sector * 2 + 2)]
                    for queue in 0..<2 {
                        pending[queue].append(try guest.submit(queue: queue, type: BlockRequestType.write.rawValue,
                                                               sector: sector + UInt64(queue) * 4, outData: halves[queue],
                                                               kick: false))
                    }
                    expected.append(halves[0] + halves[1])
                }
                // Both queues start at once: their workers walk the same blocks side by side.
                for queue in 0..<2 { try guest.kicks[queue].signal() }
                for queue in 0..<2 {
                    do {
                        #expect(try guest.complete(pending[queue]).allSatisfy { $0.status == BlockGuest.statusOK })
                    } catch {
                        Issue.record("\(error)\n\(daemon.transcript(after: 0))")
                        return
                    }
                }
                for index in 0..<blocksPerRound {
                    let block = round * blocksPerRound + index
                    if try readFile(image, offset: block * 4096, count: 4096) != expected[index] { lost.append(block) }
                }
            }
            #expect(lost.isEmpty, "blocks with a half lost: \(lost)")
        }
    }
}
