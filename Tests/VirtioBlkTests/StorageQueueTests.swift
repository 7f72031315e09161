#if canImport(Glibc)
import Glibc
#endif
import StorageIO
import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore
@testable import VirtioBlk

/// The handler over a `BlockStorageQueue`, whichever storage is behind it: the steps it owns
/// (writethrough's flush, DISCARD / WRITE_ZEROES segments one after another, errors to status
/// codes) and requests too scattered for their slot.
@Suite("virtio-blk requests through a storage queue")
struct StorageQueueTests {
    @Test("writethrough: a write, then a flush on the same tag once the write completed")
    func writethroughFlushFollowsTheWrite() throws {
        let storage = try RecordedStorage()
        let fixture = try BlockFixture(storage: storage)
        #expect(fixture.device.writeConfiguration(offset: BlockDeviceConfiguration.writebackOffset, bytes: [0]))
        let data = try fixture.buffer(BlockFixture.dataAddress, 4096, fill: 0x6B)
        let used = try fixture.submit(readable: [try fixture.header(Request.write, sector: 8), data], writable: [try fixture.statusBuffer()])
        #expect(used.length == 1)
        #expect(try fixture.status() == Status.ok)
        #expect(storage.queue.operations.map(\.operation) == [.write(offset: 4096, length: 4096), .flush])
        #expect(Set(storage.queue.operations.map(\.tag)).count == 1)
        #expect(Array(storage.queue.bytes[4096..<8192]) == [UInt8](repeating: 0x6B, count: 4096))
        #expect(!storage.queue.overlapped)
    }

    @Test("DISCARD and WRITE_ZEROES: each segment starts once the one before completed; empty ones are skipped")
    func segmentsOneAfterAnother() throws {
        let storage = try RecordedStorage()
        let fixture = try BlockFixture(storage: storage)
        #expect(fixture.device.maximumDiscardSegments == BlockRequestLimits.maximumDiscardSegments)
        let discards = try fixture.segments([(100, 8, 0), (300, 0, 0), (200, 16, 0)])
        _ = try fixture.submit(readable: [try fixture.header(Request.discard), discards], writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        let zeroes = try fixture.segments([(40, 8, 1), (60, 8, 0)])
        _ = try fixture.submit(readable: [try fixture.header(Request.writeZeroes), zeroes], writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ok)
        let expected: [RecordedQueue.Operation] = [
            .discard(offset: 51_200, length: 4096), .discard(offset: 102_400, length: 8192),
            .writeZeroes(offset: 20_480, length: 4096, unmap: true), .writeZeroes(offset: 30_720, length: 4096, unmap: false),
        ]
        #expect(storage.queue.operations.map(\.operation) == expected)
        #expect(!storage.queue.overlapped)
        let zeroed = storage.queue.bytes[30_720..<34_816].allSatisfy { $0 == 0 }
        #expect(zeroed)
    }

    @Test("a step that fails ends the request: EOPNOTSUPP is UNSUPP, any other error IOERR, and no later step starts")
    func failuresBecomeStatuses() throws {
        let storage = try RecordedStorage()
        let fixture = try BlockFixture(storage: storage)
        storage.queue.failNext = -EOPNOTSUPP
        let zeroes = try fixture.segments([(40, 8, 0), (60, 8, 0)])
        _ = try fixture.submit(readable: [try fixture.header(Request.writeZeroes), zeroes], writable: [try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.unsupported)
        #expect(storage.queue.operations.count == 1)
        storage.queue.failNext = -EIO
        let used = try fixture.submit(readable: [try fixture.header(Request.read, sector: 8)],
                                      writable: [try fixture.buffer(BlockFixture.dataAddress, 512), try fixture.statusBuffer()])
        #expect(try fixture.status() == Status.ioError)
        #expect(used.length == 1)
        #expect(fixture.handler.statistics.errors == 1)
    }

    @Test("a request in more pieces than its slot holds is waited for in submit; a storage's other completions meanwhile reach the next reap",
          arguments: [false, true])
    func scatteredRequestsAreWaitedFor(file: Bool) throws {
        let storage = try RecordedStorage()
        let engine = try ScriptedEngine()
        let fixture = file ? try BlockFixture(queueSize: 1024, scripted: engine) : try BlockFixture(queueSize: 1024, storage: storage)
        // First an ordinary write, left in flight.
        let ordinary = try fixture.buffer(BlockFixture.dataAddress, 4096, fill: 0x21)
        try fixture.driver.addChain(readable: [try fixture.header(Request.write, sector: 8), ordinary], writable: [try fixture.statusBuffer()])
        // Then a write of 512 bytes in 256 pieces of 2 (more than a slot's 128 iovecs).
        let payload = BlockRequestTests.data(512, seed: 5)
        let base = BlockFixture.dataAddress + 0x2000
        try fixture.ram.write(payload, at: gpa(base))
        let pieces = (0..<256).map { (gpa(base + UInt64($0) * 2), UInt32(2)) }
        try fixture.driver.addChain(readable: [try fixture.header(Request.write, sector: 100, at: BlockFixture.headerAddress + 16)] + pieces,
                                    writable: [try fixture.statusBuffer(at: BlockFixture.statusAddress + 1)], indirect: true)
        fixture.driver.publish()
        #expect(fixture.serve() == nil)
        // The scattered one completed in submit, before the ordinary one was reaped.
        #expect(fixture.driver.takeUsed().map(\.length) == [1, 1])
        #expect(try fixture.status() == Status.ok)
        #expect(try fixture.status(at: BlockFixture.statusAddress + 1) == Status.ok)
        let written = file ? fixture.imageBytes(offset: 100 * 512, count: 512) : Array(storage.queue.bytes[100 * 512..<101 * 512])
        #expect(written == payload)
        let first = file ? fixture.imageBytes(offset: 8 * 512, count: 4096) : Array(storage.queue.bytes[8 * 512..<16 * 512])
        #expect(first == [UInt8](repeating: 0x21, count: 4096))
    }
}

/// A storage of the test's own (a stand-in inside unit tests only): its bytes in memory, every
/// operation done when started but reported only when reaped, and what was asked recorded.
final class RecordedStorage: BlockStorage, @unchecked Sendable {
    let queue: RecordedQueue
    let size = UInt64(BlockFixture.imageSize)
    let readOnly = false
    let name = "recorded"
    let capabilities = BlockStorageCapabilities(flush: true, discard: true, writeZeroes: true)

    init() throws {
        queue = try RecordedQueue(size: BlockFixture.imageSize)
    }

    func makeQueue(index: Int, depth: Int) -> (any BlockStorageQueue)? { queue }
}

final class RecordedQueue: BlockStorageQueue {
    enum Operation: Equatable {
        case read(offset: UInt64, length: Int)
        case write(offset: UInt64, length: Int)
        case flush
        case discard(offset: UInt64, length: UInt64)
        case writeZeroes(offset: UInt64, length: UInt64, unmap: Bool)
    }

    var bytes: [UInt8]
    private(set) var operations: [(tag: UInt64, operation: Operation)] = []
    /// The result of the next operation instead of doing it.
    var failNext: Int32?
    /// A tag was started while it was in flight.
    private(set) var overlapped = false
    private var inFlight = Set<UInt64>()
    private var done: [(tag: UInt64, result: Int32)] = []
    private let notifier: EventFD

    init(size: Int) throws {
        bytes = [UInt8](repeating: 0xA5, count: size)
        notifier = try EventFD(nonBlocking: true)
    }

    var completionNotifier: Int32? { notifier.rawValue }

    func read(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart {
        start(tag, .read(offset: offset, length: length)) {
            var position = Int(offset)
            for index in 0..<count {
                let vector = vectors[index]
                bytes.withUnsafeBytes { vector.iov_base?.copyMemory(from: $0.baseAddress! + position, byteCount: vector.iov_len) }
                position += vector.iov_len
            }
        }
    }

    func write(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart {
        start(tag, .write(offset: offset, length: length)) {
            var position = Int(offset)
            for index in 0..<count {
                let vector = vectors[index]
                bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: position).copyMemory(from: vector.iov_base!, byteCount: vector.iov_len) }
                position += vector.iov_len
            }
        }
    }

    func flush(tag: UInt64) -> BlockStorageStart { start(tag, .flush) {} }

    func discard(offset: UInt64, length: UInt64, tag: UInt64) -> BlockStorageStart {
        start(tag, .discard(offset: offset, length: length)) {}
    }

    func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool, tag: UInt64) -> BlockStorageStart {
        start(tag, .writeZeroes(offset: offset, length: length, unmap: unmap)) {
            bytes.replaceSubrange(Int(offset)..<Int(offset + length), with: repeatElement(0, count: Int(length)))
        }
    }

    private func start(_ tag: UInt64, _ operation: Operation, _ perform: () -> Void) -> BlockStorageStart {
        operations.append((tag, operation))
        if !inFlight.insert(tag).inserted { overlapped = true }
        if let failure = failNext {
            failNext = nil
            done.append((tag, failure))
        } else {
            perform()
            done.append((tag, 0))
        }
        return .queued
    }

    func submit() {
        if !done.isEmpty { try? notifier.signal() }
    }

    var hasCompletions: Bool { !done.isEmpty }

    func reap(into completions: IOCompletions) -> Int {
        _ = try? notifier.drain()
        let reaped = done
        done = []
        for completion in reaped {
            inFlight.remove(completion.tag)
            completions.append(tag: completion.tag, result: completion.result)
        }
        return reaped.count
    }

    func prepareToSleep() -> Bool { hasCompletions }
}
