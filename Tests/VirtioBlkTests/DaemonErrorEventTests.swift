#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostTestSupport
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore

/// The ring rows of the hostile-guest table against the real daemon: the vhost-user-blk binary
/// (`$VHOST_USER_BLK_BIN`), attached with `FrontEndSession` the way QEMU 7.2
/// attaches, guest RAM in memfds. A FLUSH first shows the queue works; then the hostile chain
/// must make the real QueueWorker signal the queue's error eventfd (SET_VRING_ERR), serve
/// nothing, and leave the image as it was.
@Suite("hostile rings against the real daemon")
struct DaemonErrorEventTests {
    /// Ring violations, each an otherwise valid OUT of 512 bytes to sector 0.
    enum HostileRing: CaseIterable, CustomTestStringConvertible {
        case descriptorLoop, chainLongerThanTheQueue, nextOutOfRange, indirectInsideIndirect, indirectLengthNotMultipleOf16
        case addressWrapping, bufferStraddlingTheEndOfARegion, availableIndexJump, readableAfterWritable

        var testDescription: String { "\(self)" }
    }

    @Test(arguments: HostileRing.allCases)
    func workerSignalsTheErrorEventFD(ring: HostileRing) throws {
        let daemon = try Daemon()
        let guest = try AttachedGuest(socketPath: daemon.socketPath)

        // A FLUSH first: the queue works and calls.
        try guest.driver.addChain(readable: [(gpa(0x4_0800), 16)], writable: [(gpa(0x4_1800), 1)])
        try guest.ram.write([4, 0, 0, 0] + [UInt8](repeating: 0, count: 12), at: gpa(0x4_0800))
        try guest.ram.write([0xEE], at: gpa(0x4_1800))
        guest.driver.publish()
        try guest.kick.signal()
        #expect(try Self.wait(for: guest.call))
        #expect(guest.driver.takeUsed() == [DriverSplitQueue.UsedElement(id: 0, length: 1)])
        #expect(try guest.ram.read(1, at: gpa(0x4_1800)) == [0])

        try offer(ring, to: guest)
        try guest.kick.signal()
        #expect(try Self.wait(for: guest.error), "the error eventfd was not signalled")
        #expect(guest.driver.takeUsed().isEmpty)
        #expect(try guest.ram.read(1, at: gpa(BlockFixture.statusAddress)) == [BlockFixture.statusSentinel])

        let log = daemon.stop()
        #expect(log.contains("guest broke the virtqueue rules"))
        #expect(daemon.imageIsUnchanged)
    }

    /// Writes the hostile chain after the FLUSH (descriptor indices 2 and up) and publishes it.
    private func offer(_ ring: HostileRing, to guest: AttachedGuest) throws {
        try guest.ram.write([1, 0, 0, 0] + [UInt8](repeating: 0, count: 12), at: gpa(BlockFixture.headerAddress))
        try guest.ram.fill(0x77, at: gpa(BlockFixture.dataAddress), length: 512)
        try guest.ram.write([BlockFixture.statusSentinel], at: gpa(BlockFixture.statusAddress))
        var chain = [
            SplitDescriptor(address: BlockFixture.headerAddress, length: 16, flags: .next, next: 3),
            SplitDescriptor(address: BlockFixture.dataAddress, length: 512, flags: .next, next: 4),
            SplitDescriptor(address: BlockFixture.statusAddress, length: 1, flags: .write),
        ]
        switch ring {
        case .descriptorLoop:
            chain[1].next = 2
        case .chainLongerThanTheQueue:
            // Header and 12 data pieces direct (indices 2...14), then an indirect table (index 15)
            // with 4 more pieces and the status: 18 buffers, 512 bytes of data, in a queue of 16.
            let tail = (0..<4).map { SplitDescriptor(address: BlockFixture.dataAddress + 384 + UInt64($0) * 32, length: 32,
                                                     flags: .next, next: UInt16($0 + 1)) }
            let table = try guest.driver.writeIndirectTable(tail + [chain[2]])
            chain = [chain[0]]
                + (0..<12).map { SplitDescriptor(address: BlockFixture.dataAddress + UInt64($0) * 32, length: 32,
                                                 flags: .next, next: UInt16(4 + $0)) }
                + [SplitDescriptor(address: table.guestPhysicalAddress.rawValue, length: 80, flags: .indirect)]
        case .nextOutOfRange:
            chain[1].next = 16
        case .indirectInsideIndirect:
            let inner = try guest.driver.writeIndirectTable([chain[2]])
            let outer = try guest.driver.writeIndirectTable([
                SplitDescriptor(address: BlockFixture.headerAddress, length: 16, flags: .next, next: 1),
                SplitDescriptor(address: BlockFixture.dataAddress, length: 512, flags: .next, next: 2),
                SplitDescriptor(address: inner.guestPhysicalAddress.rawValue, length: 16, flags: .indirect),
            ])
            chain = [SplitDescriptor(address: outer.guestPhysicalAddress.rawValue, length: 48, flags: .indirect)]
        case .indirectLengthNotMultipleOf16:
            let table = try guest.driver.writeIndirectTable([
                SplitDescriptor(address: BlockFixture.headerAddress, length: 16, flags: .next, next: 1),
                SplitDescriptor(address: BlockFixture.dataAddress, length: 512, flags: .next, next: 2),
                chain[2],
            ])
            chain = [SplitDescriptor(address: table.guestPhysicalAddress.rawValue, length: 40, flags: .indirect)]
        case .addressWrapping:
            chain[1].address = UInt64.max - 255
        case .bufferStraddlingTheEndOfARegion:
            chain[1].address = BlockFixture.gapStart - 256
        case .availableIndexJump:
            break
        case .readableAfterWritable:
            chain[1].flags.insert(.write)
            chain[2].flags.remove(.write)
        }
        for (offset, descriptor) in chain.enumerated() {
            try guest.driver.writeDescriptor(descriptor, at: 2 + offset)
        }
        guest.driver.makeAvailable(head: 2)
        if ring == .availableIndexJump {
            guest.driver.setAvailableIndex(guest.driver.availableIndex &+ 16)
        } else {
            guest.driver.publish()
        }
    }

    /// Waits up to 5 s for `eventfd` to be signalled and drains it.
    static func wait(for eventfd: EventFD) throws -> Bool {
        var descriptor = pollfd(fd: eventfd.rawValue, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 5_000)
        guard ready == 1 else { return false }
        return try eventfd.drain() != nil
    }
}

/// The daemon binary serving a fresh pattern-filled image on a fresh socket, with its log.
final class Daemon {
    let socketPath: String
    let imagePath: String
    private let process = Process()
    private let output = Pipe()
    private var stopped = false

    init() throws {
        let binary = try TestBinary.daemon.path
        let name = "vublk-\(getpid())-\(UUID().uuidString.prefix(8))"
        socketPath = "/tmp/\(name).sock"
        imagePath = "/tmp/\(name).img"
        try #require(FileManager.default.createFile(atPath: imagePath, contents: Data(BlockFixture.initialImage)))
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--socket-path", socketPath, "--blk-file", imagePath, "--num-queues", "1",
                             "--queue-size", "16", "--log-level", "error"]
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            unlink(imagePath)
            throw error
        }
    }

    /// SIGTERM, wait, and return what the daemon logged.
    func stop() -> String {
        guard !stopped else { return "" }
        stopped = true
        process.terminate()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    var imageIsUnchanged: Bool {
        guard let data = FileManager.default.contents(atPath: imagePath) else { return false }
        return BlockFixture.sameBytes(Array(data), BlockFixture.initialImage)
    }

    deinit {
        _ = stop()
        unlink(imagePath)
        unlink(socketPath)
    }
}

/// Guest RAM and a driver queue attached to the daemon as QEMU 7.2 attaches a vhost-user-blk
/// device: handshake, SET_FEATURES, SET_MEM_TABLE, ring 0 of 16 entries (no EVENT_IDX), enabled.
final class AttachedGuest {
    let session: FrontEndSession
    let ram: GuestRAM
    let driver: DriverSplitQueue
    let kick: EventFD
    let call: EventFD
    let error: EventFD

    init(socketPath: String) throws {
        session = try FrontEndSession.connect(path: socketPath)
        let agreed = try session.negotiate(wanted: [.version1, .indirectDescriptors, .flush],
                                           wantedProtocol: FrontEndSession.qemu72ProtocolFeatures,
                                           requiring: [.version1, .indirectDescriptors])
        try session.setFeatures(agreed.features)
        ram = try GuestRAM(regions: BlockFixture.regions)
        try session.setMemoryTable(try ram.regions.map { region in
            (try MemoryRegionDescription(guestPhysicalAddress: region.guestPhysicalStart.rawValue, size: UInt64(region.size),
                                         userAddress: region.frontEndVirtualStart.rawValue, mmapOffset: region.mmapOffset),
             region.descriptor.rawValue)
        })
        driver = try DriverSplitQueue(ram: ram, queueSize: 16)
        kick = try EventFD()
        call = try EventFD()
        error = try EventFD()
        let rings = driver.frontEndVirtualAddresses
        try session.configureRing(index: 0, size: 16, descriptorTable: rings.descriptorTable.rawValue,
                                  availableRing: rings.availableRing.rawValue, usedRing: rings.usedRing.rawValue,
                                  kick: kick, call: call, error: error)
        try session.enableRing(index: 0, true)
    }
}
