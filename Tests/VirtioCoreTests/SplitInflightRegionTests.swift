import Testing
import VhostTestSupport
import VirtioCore

/// The inflight log of a split queue, crashed at every point of its documented update order.
///
/// A scenario fetches requests and completes them in out-of-order batches through the real
/// `SplitInflightRegion` operations, with the driver-visible used->idx published between
/// `linkIntoBatch` and `clearInflight` as the worker does. Before every operation, and inside
/// the two operations that make two stores (after the first store), the test copies the bytes
/// as a crash would leave them, runs `recover` on the copy and checks that exactly the requests
/// whose completion the driver has not seen are resubmitted, in fetch order, and that the ring
/// continues after the last fetch that was recorded.
@Suite("Split inflight region")
struct SplitInflightRegionTests {
    static let queueSize = 16

    /// A region plus the one ring field recovery reads (used->idx), and what the driver knows.
    final class Log {
        let bytes: UnsafeMutableRawPointer
        var region: SplitInflightRegion { SplitInflightRegion(base: bytes, queueSize: SplitInflightRegionTests.queueSize) }
        var usedRingIndex: UInt16 = 0
        /// Every fetch whose flag is stored, in fetch order, and whether the driver has seen it
        /// completed (a head is fetched again after it completes).
        var recorded: [(head: UInt16, published: Bool)] = []
        var fetchesRecorded = 0

        init() {
            let count = SplitInflightRegion.byteCount(queueSize: SplitInflightRegionTests.queueSize)
            bytes = .allocate(byteCount: count, alignment: 64)
            SplitInflightRegion(base: bytes, queueSize: SplitInflightRegionTests.queueSize).format()
        }

        deinit { bytes.deallocate() }
    }

    struct Crash: CustomStringConvertible {
        var bytes: [UInt8]
        var usedRingIndex: UInt16
        var expectedResubmit: [UInt16]
        var expectedNextAvailable: UInt16
        var point: String
        var description: String { point }
    }

    /// What recovery must find if the process died with the log in its current state.
    private func snapshot(_ log: Log, at point: String, adjust: (UnsafeMutableRawPointer) -> Void = { _ in }) -> Crash {
        let count = SplitInflightRegion.byteCount(queueSize: Self.queueSize)
        var copy = [UInt8](UnsafeRawBufferPointer(start: log.bytes, count: count))
        copy.withUnsafeMutableBytes { adjust($0.baseAddress!) }
        let pending = log.recorded.filter { !$0.published }.map(\.head)
        return Crash(bytes: copy, usedRingIndex: log.usedRingIndex, expectedResubmit: pending,
                     expectedNextAvailable: UInt16(truncatingIfNeeded: log.fetchesRecorded), point: point)
    }

    /// Runs a random scenario and returns the state at every crash point.
    private func crashes(seed: UInt64) -> [Crash] {
        var random = SplitMix64(seed: seed)
        let log = Log()
        var crashes: [Crash] = []
        var counter: UInt64 = 1
        var inflight: [UInt16] = []
        for _ in 0..<40 {
            let free = (0..<UInt16(Self.queueSize)).filter { !inflight.contains($0) }
            if !free.isEmpty, inflight.isEmpty || random.next() % 3 != 0 {
                let head = free[Int(random.next() % UInt64(free.count))]
                crashes.append(snapshot(log, at: "before fetching \(head)"))
                // Inside recordFetch: the counter stored, the flag not yet.
                crashes.append(snapshot(log, at: "counter of \(head) stored") { base in
                    SplitInflightRegion(base: base, queueSize: Self.queueSize).forTestStoreCounter(head: head, counter)
                })
                log.region.recordFetch(head: head, counter: counter)
                counter += 1
                log.recorded.append((head, false))
                log.fetchesRecorded += 1
                inflight.append(head)
            } else {
                // Complete a random non-empty subset, in random order, as one batch.
                var batch = inflight.shuffled(using: &random)
                batch.removeLast(Int(random.next() % UInt64(batch.count)))
                for head in batch {
                    crashes.append(snapshot(log, at: "before linking \(head)"))
                    let previous = log.region.lastBatchHead
                    crashes.append(snapshot(log, at: "next of \(head) stored") { base in
                        SplitInflightRegion(base: base, queueSize: Self.queueSize).forTestStoreNext(head: head, previous)
                    })
                    log.region.linkIntoBatch(head: head)
                }
                crashes.append(snapshot(log, at: "before publishing used->idx"))
                log.usedRingIndex &+= UInt16(batch.count)
                for index in log.recorded.indices where batch.contains(log.recorded[index].head) {
                    log.recorded[index].published = true
                }
                for head in batch {
                    crashes.append(snapshot(log, at: "before clearing \(head)"))
                    log.region.clearInflight(head: head)
                }
                crashes.append(snapshot(log, at: "before storing used_idx"))
                log.region.storeUsedIndex(log.usedRingIndex)
                inflight.removeAll { batch.contains($0) }
            }
        }
        crashes.append(snapshot(log, at: "end"))
        return crashes
    }

    @Test("a crash between any two stores resubmits exactly the unfinished requests, in fetch order",
          arguments: 0..<50)
    func crashAnywhere(seed: UInt64) throws {
        for crash in crashes(seed: seed) {
            var bytes = crash.bytes
            let recovery = try bytes.withUnsafeMutableBytes { raw in
                try SplitInflightRegion(base: raw.baseAddress!, queueSize: Self.queueSize)
                    .recover(regionBytes: raw.count, usedRingIndex: crash.usedRingIndex)
            }
            #expect(recovery.resubmit == crash.expectedResubmit, "seed \(seed), \(crash.point)")
            #expect(recovery.nextAvailableIndex == crash.expectedNextAvailable, "seed \(seed), \(crash.point)")
            // Recovery leaves a consistent log: running it again changes nothing.
            let again = try bytes.withUnsafeMutableBytes { raw in
                try SplitInflightRegion(base: raw.baseAddress!, queueSize: Self.queueSize)
                    .recover(regionBytes: raw.count, usedRingIndex: crash.usedRingIndex)
            }
            #expect(again == recovery, "seed \(seed), \(crash.point)")
        }
    }

    @Test("a region never used (version 0) is formatted and has nothing in flight")
    func freshRegion() throws {
        var bytes = [UInt8](repeating: 0, count: SplitInflightRegion.byteCount(queueSize: Self.queueSize))
        let recovery = try bytes.withUnsafeMutableBytes { raw in
            try SplitInflightRegion(base: raw.baseAddress!, queueSize: Self.queueSize).recover(regionBytes: raw.count, usedRingIndex: 7)
        }
        #expect(recovery == InflightRecovery(resubmit: [], nextAvailableIndex: 7, nextCounter: 1))
        bytes.withUnsafeMutableBytes { raw in
            let region = SplitInflightRegion(base: raw.baseAddress!, queueSize: Self.queueSize)
            #expect(region.version == 1 && region.descriptorCount == 16 && region.usedIndex == 7)
        }
    }

    @Test("the layout: 16-byte header, 16 bytes per descriptor, regions 64-byte aligned")
    func layout() {
        #expect(SplitInflightRegion.byteCount(queueSize: 128) == 16 + 16 * 128 + 48)
        #expect(SplitInflightRegion.byteCount(queueSize: 1) == 64)
        var bytes = [UInt8](repeating: 0, count: SplitInflightRegion.byteCount(queueSize: 4))
        bytes.withUnsafeMutableBytes { raw in
            let region = SplitInflightRegion(base: raw.baseAddress!, queueSize: 4)
            region.format()
            region.recordFetch(head: 2, counter: 0x0102_0304_0506_0708)
            region.linkIntoBatch(head: 2)
            region.storeUsedIndex(0x1234)
        }
        #expect(bytes[8] == 1 && bytes[10] == 4)  // version, desc_num
        #expect(bytes[12] == 2 && bytes[14] == 0x34 && bytes[15] == 0x12)  // last_batch_head, used_idx
        let entry = 16 + 16 * 2
        #expect(bytes[entry] == 1)  // inflight
        #expect(bytes[entry + 8] == 0x08 && bytes[entry + 15] == 0x01)  // counter, little-endian
    }

    /// The front end controls the region: every malformed field is refused before anything
    /// is written.
    struct Corruption: Sendable, CustomTestStringConvertible {
        var name: String
        /// Bytes to overwrite: (offset, value).
        var pokes: [(Int, UInt8)]
        var expected: InflightError
        var testDescription: String { name }
    }

    static let corruptions = [
        Corruption(name: "version 2", pokes: [(8, 2)], expected: .unsupportedVersion(2)),
        Corruption(name: "desc_num 8", pokes: [(10, 8)], expected: .queueSizeMismatch(region: 8, ring: 16)),
        Corruption(name: "inflight flag 2", pokes: [(16 + 16 * 3, 2)], expected: .invalidInflightFlag(head: 3, value: 2)),
        // used_idx 0xF00A against used->idx 12: a last batch of 0x1002 entries.
        Corruption(name: "last batch longer than the queue", pokes: [(14, 0x0A), (15, 0xF0)], expected: .lastBatchTooLong(0x1002)),
        Corruption(name: "batch list leaving the ring", pokes: [(12, 40)], expected: .batchHeadOutOfRange(40)),
    ]

    @Test(arguments: corruptions)
    func hostileRegions(_ corruption: Corruption) throws {
        var bytes = [UInt8](repeating: 0, count: SplitInflightRegion.byteCount(queueSize: Self.queueSize))
        bytes.withUnsafeMutableBytes { SplitInflightRegion(base: $0.baseAddress!, queueSize: Self.queueSize).format(usedIndex: 10) }
        for (offset, value) in corruption.pokes { bytes[offset] = value }
        let before = bytes
        #expect(throws: corruption.expected, "\(corruption.name)") {
            try bytes.withUnsafeMutableBytes { raw in
                try SplitInflightRegion(base: raw.baseAddress!, queueSize: Self.queueSize).recover(regionBytes: raw.count, usedRingIndex: 12)
            }
        }
        #expect(bytes == before, "nothing written for \(corruption.name)")
        #expect(throws: InflightError.regionTooSmall(bytes: 100, needed: SplitInflightRegion.byteCount(queueSize: Self.queueSize))) {
            try bytes.withUnsafeMutableBytes { raw in
                try SplitInflightRegion(base: raw.baseAddress!, queueSize: Self.queueSize).recover(regionBytes: 100, usedRingIndex: 12)
            }
        }
    }
}

extension SplitInflightRegion {
    /// The first of recordFetch's two stores alone (the state a crash inside it leaves).
    func forTestStoreCounter(head: UInt16, _ counter: UInt64) {
        RingMemory.storeUInt64(counter, base, offset: Self.headerByteCount + Self.descriptorStateByteCount * Int(head) + 8)
    }

    /// The first of linkIntoBatch's two stores alone.
    func forTestStoreNext(head: UInt16, _ next: UInt16) {
        RingMemory.storeUInt16(next, base, offset: Self.headerByteCount + Self.descriptorStateByteCount * Int(head) + 6)
    }
}
