import Foundation
import Testing
import VhostSystem
@testable import Qcow2

/// Requests through the engine (`Qcow2Request`): many in flight at once over a few clusters,
/// their transfers carried out in random order (some short, some refused with EAGAIN), mixed
/// with synchronous writes, zeroing and discards. Afterwards the image is consistent and holds
/// what a byte array given the same operations holds; cut off at a random point (as kill -9
/// would: transfers not yet carried out never happen), `qemu-img check` finds at worst leaked
/// clusters and every finished write is there.
@Suite struct Qcow2RequestTests {
    struct Case: CustomStringConvertible, Sendable {
        enum Backing: Sendable {
            case none
            /// Random bytes in a qcow2 base.
            case qcow2
            /// Compressible text in a `qemu-img convert -c` base: reads decompress.
            case compressed
        }
        let name: String
        let options: [String]
        var backing = Backing.none
        var direct = false
        /// `--l2-cache-size` in bytes (nil: the default, the whole disk's tables).
        var l2Cache: Int? = nil
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "64k", options: []),
        Case(name: "4k", options: ["-o", "cluster_size=4096"]),
        Case(name: "512 B, 1-bit refcounts", options: ["-o", "cluster_size=512,refcount_bits=1"]),
        Case(name: "version 2", options: ["-o", "compat=0.10"]),
        Case(name: "over a qcow2 base", options: [], backing: .qcow2),
        Case(name: "over a compressed base", options: [], backing: .compressed),
        Case(name: "O_DIRECT", options: [], direct: true),
        // Two L2 tables of 32 KiB of disk each cached: most requests read their tables first.
        Case(name: "512 B, two L2 tables cached", options: ["-o", "cluster_size=512"], l2Cache: 1024),
    ]

    static let diskSize = 4 << 20

    @Test(arguments: cases)
    func requestsInAnyOrderLeaveAConsistentImage(_ testCase: Case) throws {
        let scratch = try Qcow2Scratch(under: testCase.direct ? "/var/tmp" : NSTemporaryDirectory())
        let image = try makeImage(testCase, in: scratch)
        var harness = try Harness(disk: scratch.open(image, readOnly: false, direct: testCase.direct, l2CacheBytes: testCase.l2Cache),
                                  model: try scratch.contents(of: image), seed: 0xa5f1, direct: testCase.direct)
        // Over a compressed base, mostly reads over the whole disk: writes copy clusters up.
        if testCase.backing == .compressed { harness.readsInTen = 8; harness.region = Self.diskSize }
        for _ in 0..<1_000 { harness.step() }
        harness.drain()
        // Over a compressed base writes are two in ten, and copy-on-write goes the synchronous way.
        let expectedWrites = testCase.backing == .compressed ? 30 : 100
        #expect(harness.asynchronousWrites > expectedWrites, "too few writes went through the engine: \(harness.asynchronousWrites)")
        if testCase.backing == .none {
            #expect(harness.mostAllocationsInFlight > 1, "no allocations were ever in flight together")
        }
        if testCase.l2Cache != nil {
            let loaded = harness.requests.reduce(0) { $0 + $1.tablesLoaded }
            #expect(loaded > 10, "too few L2 tables were read through the engine: \(loaded)")
        }
        if testCase.backing == .compressed {
            let decompressed = harness.requests.reduce(0) { $0 + $1.compressedClustersRead }
            #expect(decompressed > 20, "too few compressed clusters were read through the engine: \(decompressed)")
        }
        #expect(firstDifference(try harness.disk.readAll(), harness.model) == nil, "our reads differ")
        let model = harness.model
        harness.close()
        let check = try scratch.check(image)
        #expect(check.output.contains("No errors were found"), "\(check.output)")
        #expect(firstDifference(try scratch.contents(of: image), model) == nil, "qemu-img reads otherwise")
    }

    @Test(arguments: cases)
    func cutOffAtAnyPointLeavesLeaksAtWorst(_ testCase: Case) throws {
        let scratch = try Qcow2Scratch(under: testCase.direct ? "/var/tmp" : NSTemporaryDirectory())
        var random = TestRandom(state: 0xc0ff)
        for round in 0..<4 {
            let image = try makeImage(testCase, in: scratch)
            var harness = try Harness(disk: scratch.open(image, readOnly: false, direct: testCase.direct, l2CacheBytes: testCase.l2Cache),
                                      model: try scratch.contents(of: image), seed: random.next(), direct: testCase.direct)
            for _ in 0..<(50 + random.below(400)) { harness.step() }
            // Bytes of writes not finished may hold old or new data.
            let unsettled = harness.unfinishedWrites
            let model = harness.model
            harness.close()
            let check = try scratch.check(image)
            #expect(check.status == 0 || check.status == 3, "round \(round): \(check.output)")
            #expect(!check.output.contains("ERROR"), "round \(round): \(check.output)")
            var contents = try scratch.contents(of: image)
            var expected = model
            for range in unsettled {
                contents.replaceSubrange(range, with: repeatElement(0, count: range.count))
                expected.replaceSubrange(range, with: repeatElement(0, count: range.count))
            }
            #expect(firstDifference(contents, expected) == nil, "round \(round): a finished write is missing")
            try FileManager.default.removeItem(atPath: image)
        }
    }

    /// An L2 table read through the engine while a synchronous write changes it and the cache
    /// evicts it again must not be cached: its bytes may be older than the file's.
    @Test func aTableChangedWhileItWasReadIsNotCached() throws {
        let scratch = try Qcow2Scratch()
        let image = scratch.path("disk.qcow2")
        try scratch.qemuImg(["create", "-f", "qcow2", "-o", "cluster_size=512", image, "1M"])
        // Two 512-byte L2 tables cached; each maps 32 KiB.
        let disk = try scratch.open(image, readOnly: false, l2CacheBytes: 1024)
        let regions: [UInt64] = [0, 32 << 10, 64 << 10]
        for region in regions { #expect(disk.write([UInt8](repeating: 1, count: 512), at: region) == 0) }
        func evictTheFirstTable() throws {
            var buffer = [UInt8](repeating: 0, count: 512)
            for region in regions.dropFirst() {
                let result = buffer.withUnsafeMutableBytes { raw -> Int32 in
                    var vector = iovec(iov_base: raw.baseAddress, iov_len: 512)
                    return disk.read(&vector, count: 1, offset: region, length: 512)
                }
                #expect(result == 0)
            }
        }
        try evictTheFirstTable()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 4096)
        defer { buffer.deallocate() }
        var vector = iovec(iov_base: buffer.baseAddress, iov_len: 512)
        let request = Qcow2Request(disk: disk)
        var progress = try #require(request.startRead(&vector, count: 1, offset: 512, length: 512))
        #expect(progress == .start(count: 1), "the first table is not cached: it is read first")
        let load = request.transfers[0]
        #expect(PositionedTransfer.run(load.descriptor, load.vectors, count: load.count, byteCount: load.length, offset: load.offset,
                                       write: false, pastEnd: .zeroFill) == 0)
        // Meanwhile a write allocates a cluster in that table, and the table leaves the cache.
        #expect(disk.write([UInt8](repeating: 0xab, count: 512), at: 512) == 0)
        try evictTheFirstTable()
        progress = request.completed(0, result: Int32(load.length))
        while case .start(let count) = progress {
            var next = Qcow2Request.Progress.waiting
            for index in 0..<count {
                let transfer = request.transfers[index]
                let error = PositionedTransfer.run(transfer.descriptor, transfer.vectors, count: transfer.count,
                                                   byteCount: transfer.length, offset: transfer.offset,
                                                   write: transfer.direction == .write, pastEnd: .zeroFill)
                let reported = request.completed(index, result: error == 0 ? Int32(transfer.length) : -error)
                if reported != .waiting { next = reported }
            }
            progress = next
        }
        #expect(progress == .finished(errno: 0))
        // What the cache holds now must be the table as written.
        var after = [UInt8](repeating: 0, count: 512)
        let result = after.withUnsafeMutableBytes { raw -> Int32 in
            var vector = iovec(iov_base: raw.baseAddress, iov_len: 512)
            return disk.read(&vector, count: 1, offset: 512, length: 512)
        }
        #expect(result == 0)
        #expect(after.allSatisfy { $0 == 0xab }, "a stale L2 table was cached")
    }

    /// The first offset where two disks differ (nil when equal), rather than both in a message.
    private func firstDifference(_ one: [UInt8], _ other: [UInt8]) -> Int? {
        guard one.count == other.count else { return min(one.count, other.count) }
        return one.indices.first { one[$0] != other[$0] }
    }

    private func makeImage(_ testCase: Case, in scratch: Qcow2Scratch) throws -> String {
        let image = scratch.path("disk-\(UUID().uuidString).qcow2")
        if testCase.backing != .none {
            let raw = scratch.path("base.raw")
            var random = TestRandom(state: 7)
            if testCase.backing == .compressed {
                var text = [UInt8]()
                while text.count < Self.diskSize { text += Array("line \(random.next() % 997) of a compressible base\n".utf8) }
                try Data(text.prefix(Self.diskSize)).write(to: URL(fileURLWithPath: raw))
            } else {
                try Data(random.bytes(Self.diskSize)).write(to: URL(fileURLWithPath: raw))
            }
            try scratch.qemuImg(["convert"] + (testCase.backing == .compressed ? ["-c"] : []) + ["-O", "qcow2", raw, scratch.path("base.qcow2")])
            try scratch.qemuImg(["create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2"] + testCase.options + [image, "\(Self.diskSize)"])
        } else {
            try scratch.qemuImg(["create", "-f", "qcow2"] + testCase.options + [image, "\(Self.diskSize)"])
        }
        return image
    }
}

/// One operation in flight: its request (nil when served synchronously), its range, and its
/// buffer and iovecs (aligned for O_DIRECT), freed with it.
private final class Operation {
    let request: Qcow2Request
    let isWrite: Bool
    let range: Range<Int>
    let buffer: UnsafeMutableRawBufferPointer
    let vectors: UnsafeMutablePointer<iovec>
    let vectorCount: Int

    init(request: Qcow2Request, isWrite: Bool, range: Range<Int>, bytes: [UInt8]?, cut: Int?) {
        self.request = request
        self.isWrite = isWrite
        self.range = range
        buffer = .allocate(byteCount: range.count, alignment: 4096)
        if let bytes { buffer.copyBytes(from: bytes) } else { buffer.initializeMemory(as: UInt8.self, repeating: 0xee) }
        vectors = .allocate(capacity: 2)
        let base = buffer.baseAddress.unsafelyUnwrapped
        if let cut {
            vectors[0] = iovec(iov_base: base, iov_len: cut)
            vectors[1] = iovec(iov_base: base + cut, iov_len: range.count - cut)
            vectorCount = 2
        } else {
            vectors[0] = iovec(iov_base: base, iov_len: range.count)
            vectorCount = 1
        }
    }

    deinit {
        buffer.deallocate()
        vectors.deallocate()
    }

    var bytes: [UInt8] { Array(buffer) }
}

/// Drives requests the way the device's handler does, with the engine replaced by a list of
/// transfers carried out one at a time, in random order, when the test says they complete.
private struct Harness {
    let disk: Qcow2Disk
    var model: [UInt8]
    var random: TestRandom
    let alignment: Int
    let clusterSize: Int
    var requests: [Qcow2Request]
    var busy: [Operation?]
    var pending: [(slot: Int, index: Int, transfer: Qcow2Transfer)] = []
    var asynchronousWrites = 0
    var mostAllocationsInFlight = 0
    /// The region the operations fall in: a few clusters, so that they meet.
    var region: Int
    /// Of ten operations started, how many are reads.
    var readsInTen = 3

    init(disk: Qcow2Disk, model: [UInt8], seed: UInt64, direct: Bool) {
        self.disk = disk
        self.model = model
        random = TestRandom(state: seed)
        alignment = direct ? 4096 : 512
        clusterSize = disk.clusterSize
        requests = (0..<12).map { _ in Qcow2Request(disk: disk) }
        busy = Array(repeating: nil, count: 12)
        region = min(Int(disk.virtualSize), max(24 * disk.clusterSize, 256 << 10))
    }

    var unfinishedWrites: [Range<Int>] { busy.compactMap { $0 }.filter(\.isWrite).map(\.range) }

    mutating func step() {
        let choice = random.below(10)
        if choice < 4, let slot = busy.firstIndex(where: { $0 == nil }) {
            start(slot)
        } else if choice < 9, !pending.isEmpty {
            completeOne()
        } else {
            synchronousOperation()
        }
        let inFlight = disk.top.metadata.withLock { $0.inFlight.count }
        mostAllocationsInFlight = max(mostAllocationsInFlight, inFlight)
    }

    mutating func drain() {
        while !pending.isEmpty { completeOne() }
        #expect(busy.allSatisfy { $0 == nil }, "a request never finished")
    }

    /// Drops everything as a kill would: transfers not carried out never happen.
    mutating func close() {
        pending.removeAll()
        busy = busy.map { _ in nil }
        requests.removeAll()
    }

    /// A range no operation in flight touches.
    mutating func freeRange() -> Range<Int>? {
        for _ in 0..<10 {
            let units = random.below(4) == 0 ? random.below(3 * clusterSize / alignment + 1) + 1 : random.below(16) + 1
            let length = min(units * alignment, region)
            let offset = random.below((region - length) / alignment + 1) * alignment
            let range = offset..<(offset + length)
            if !busy.contains(where: { $0?.range.overlaps(range) == true }) { return range }
        }
        return nil
    }

    mutating func start(_ slot: Int) {
        guard let range = freeRange() else { return }
        let isWrite = random.below(10) >= readsInTen
        let cut = range.count > alignment && random.below(2) == 0 ? random.below(range.count / alignment - 1) * alignment + alignment : nil
        let operation = Operation(request: requests[slot], isWrite: isWrite, range: range,
                                  bytes: isWrite ? random.bytes(range.count) : nil, cut: cut)
        let progress = isWrite
            ? operation.request.startWrite(operation.vectors, count: operation.vectorCount, offset: UInt64(range.lowerBound), length: range.count)
            : operation.request.startRead(operation.vectors, count: operation.vectorCount, offset: UInt64(range.lowerBound), length: range.count)
        guard let progress else {
            // Served synchronously, as the device does when the request declines.
            let result = isWrite
                ? disk.write(operation.vectors, count: operation.vectorCount, offset: UInt64(range.lowerBound), length: range.count)
                : disk.read(operation.vectors, count: operation.vectorCount, offset: UInt64(range.lowerBound), length: range.count)
            #expect(result == 0)
            finished(operation)
            return
        }
        if isWrite { asynchronousWrites += 1 }
        busy[slot] = operation
        handle(slot, progress)
    }

    mutating func handle(_ slot: Int, _ progress: Qcow2Request.Progress) {
        switch progress {
        case .start(let count):
            for index in 0..<count { pending.append((slot, index, requests[slot].transfers[index])) }
        case .waiting:
            break
        case .finished(let error):
            #expect(error == 0)
            if let operation = busy[slot] { finished(operation) }
            busy[slot] = nil
        }
    }

    mutating func finished(_ operation: Operation) {
        if operation.isWrite {
            model.replaceSubrange(operation.range, with: operation.bytes)
        } else {
            // A Bool, not the arrays: a failure message must not print megabytes.
            let same = operation.bytes == Array(model[operation.range])
            #expect(same, "read at \(operation.range) differs")
        }
    }

    /// Carries out one pending transfer: whole, short (part of it), or not at all (EAGAIN).
    mutating func completeOne() {
        let (slot, index, transfer) = pending.remove(at: random.below(pending.count))
        let result: Int32
        switch random.below(10) {
        case 0 where transfer.length > alignment:
            let part = random.below(transfer.length / alignment - 1) * alignment + alignment
            result = carryOut(transfer, bytes: part)
        case 1:
            result = -EAGAIN
        default:
            result = carryOut(transfer, bytes: transfer.length)
        }
        handle(slot, requests[slot].completed(index, result: result))
    }

    func carryOut(_ transfer: Qcow2Transfer, bytes: Int) -> Int32 {
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: transfer.count) { slice -> Int32 in
            var used = 0
            var left = bytes
            for index in 0..<transfer.count where left > 0 {
                let piece = min(left, transfer.vectors[index].iov_len)
                slice[used] = iovec(iov_base: transfer.vectors[index].iov_base, iov_len: piece)
                used += 1
                left -= piece
            }
            guard let base = slice.baseAddress else { return -EINVAL }
            let error = PositionedTransfer.run(transfer.descriptor, base, count: used, byteCount: bytes, offset: transfer.offset,
                                               write: transfer.direction == .write, pastEnd: .zeroFill)
            return error == 0 ? Int32(bytes) : -error
        }
    }

    /// A write, zeroing or discard through the synchronous path, beside the requests in flight.
    mutating func synchronousOperation() {
        guard let range = freeRange() else { return }
        let offset = UInt64(range.lowerBound)
        switch random.below(3) {
        case 0:
            let bytes = random.bytes(range.count)
            #expect(disk.write(bytes, at: offset) == 0)
            model.replaceSubrange(range, with: bytes)
        case 1:
            #expect(disk.writeZeroes(offset: offset, length: UInt64(range.count), unmap: random.below(2) == 0) == 0)
            model.replaceSubrange(range, with: repeatElement(0, count: range.count))
        default:
            #expect(disk.discard(offset: offset, length: UInt64(range.count)) == 0)
            let first = (range.lowerBound + clusterSize - 1) / clusterSize * clusterSize
            let last = range.upperBound / clusterSize * clusterSize
            if first < last, disk.version >= 3 || disk.layers.count == 1 {
                model.replaceSubrange(first..<last, with: repeatElement(0, count: last - first))
            }
        }
    }
}
