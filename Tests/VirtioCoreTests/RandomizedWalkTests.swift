#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import VhostTestSupport
import VhostSystem
import VhostUserFrontEnd
import VirtioCore
import VirtioSpec

/// Random descriptor tables, valid and hostile, fed to `popAvailable`: it must never trap, never
/// hand out a segment outside the mapped regions, and agree with the reference model on every
/// outcome (the same chain, or the same error).
@Suite struct RandomizedWalkTests {
    static let maximumQueueSize = 16
    static let tableEntries = 32

    /// Fixed places in guest memory for the rings and the indirect tables.
    final class Arena {
        let fixture: GuestFixture
        let descriptorTable: GuestRAM.Allocation
        let availableRing: GuestRAM.Allocation
        let usedRing: GuestRAM.Allocation
        /// Indirect tables in region 0, plus one straddling the boundary into region 1.
        let indirectTables: [UInt64]
        let dataStart: UInt64 = 0x8_0000

        init() throws {
            fixture = try GuestFixture(queueSize: 8)
            let ram = fixture.ram
            descriptorTable = try ram.allocate(size: 16 * RandomizedWalkTests.maximumQueueSize, alignment: 16)
            availableRing = try ram.allocate(size: 6 + 2 * RandomizedWalkTests.maximumQueueSize, alignment: 2)
            usedRing = try ram.allocate(size: 6 + 8 * RandomizedWalkTests.maximumQueueSize, alignment: 4)
            var tables: [UInt64] = []
            for _ in 0..<4 {
                tables.append(try ram.allocate(size: 16 * RandomizedWalkTests.tableEntries, alignment: 16).guestPhysicalAddress.rawValue)
            }
            tables.append(GuestFixture.region1Start - 64)
            indirectTables = tables
        }
    }

    struct Generator {
        var random: SplitMix64
        let arena: Arena
        let queueSize: Int

        mutating func below(_ bound: Int) -> Int { Int(random.next() % UInt64(bound)) }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

        mutating func address() -> UInt64 {
            switch below(12) {
            case 0...4: return arena.dataStart + UInt64(below(0x1_0000))
            case 5: return GuestFixture.region1Start - UInt64(below(0x400))
            case 6: return GuestFixture.region1End - UInt64(below(0x400))
            case 7: return GuestFixture.gapStart + UInt64(below(0x100_0000))
            case 8: return GuestFixture.region2Start + UInt64(below(GuestFixture.region2Size + 0x100)) &- 0x80
            case 9: return UInt64.max - UInt64(below(0x1000))
            case 10: return random.next()
            default: return arena.indirectTables[below(arena.indirectTables.count)]
            }
        }

        mutating func length() -> UInt32 {
            switch below(10) {
            case 0: return 0
            case 1...4: return UInt32(1 + below(0x200))
            case 5, 6: return UInt32(16 * (1 + below(queueSize + 2)))
            case 7: return UInt32(below(0x1_0000))
            case 8: return UInt32(truncatingIfNeeded: random.next())
            default: return UInt32(below(48))
            }
        }

        mutating func flags(position: Int, count: Int, writableFrom: Int) -> SplitDescriptor.Flags {
            if chance(10) {
                return SplitDescriptor.Flags(rawValue: UInt16(truncatingIfNeeded: random.next()) & (chance(90) ? 0x7 : 0xffff))
            }
            var flags: SplitDescriptor.Flags = []
            if position + 1 < count { flags.insert(.next) }
            if position >= writableFrom { flags.insert(.write) }
            if position + 1 == count && chance(20) { flags.insert(.indirect) }
            return flags
        }

        /// `count` descriptors that mostly form well-ordered linear chains, with random damage.
        mutating func descriptors(count: Int, indexLimit: Int) -> [SplitDescriptor] {
            let writableFrom = below(count + 1)
            return (0..<count).map { position in
                let flags = flags(position: position, count: count, writableFrom: writableFrom)
                var length = length()
                var address = address()
                if flags.contains(.indirect) && chance(70) {
                    address = arena.indirectTables[below(arena.indirectTables.count)]
                    length = UInt32(16 * (1 + below(min(queueSize + 1, RandomizedWalkTests.tableEntries))))
                } else if !flags.contains(.indirect) && chance(75) {
                    address = arena.dataStart + UInt64(below(0x1_0000))
                    length = UInt32(below(0x300))
                }
                let next = chance(80) ? UInt16(position + 1) : (chance(80) ? UInt16(below(indexLimit + 1)) : UInt16(truncatingIfNeeded: random.next()))
                return SplitDescriptor(address: address, length: length, flags: flags, next: next)
            }
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 0x5eed, 0xdead_beef])
    func randomTablesNeverTrapNeverEscapeGuestMemoryAndMatchTheModel(seed: UInt64) throws {
        let arena = try Arena()
        let fixture = arena.fixture
        var random = SplitMix64(seed: seed)
        var chainsPopped = 0
        var errorsSeen: [String: Int] = [:]

        for _ in 0..<1500 {
            let queueSize = 1 << Int(random.next() % 5)   // 1...16
            let indirectAllowed = random.next() % 4 != 0
            let maximumSegments: Int? = random.next() % 8 == 0 ? Int(1 + random.next() % 4) : nil
            var generator = Generator(random: random, arena: arena, queueSize: queueSize)

            // The descriptor table and every indirect table get fresh random contents.
            for (index, descriptor) in generator.descriptors(count: queueSize, indexLimit: queueSize).enumerated() {
                descriptor.store(to: arena.descriptorTable.pointer + 16 * index)
            }
            for table in arena.indirectTables {
                let entries = generator.descriptors(count: RandomizedWalkTests.tableEntries, indexLimit: RandomizedWalkTests.tableEntries)
                try fixture.ram.write(entries.flatMap(Self.bytes), at: gpa(table))
            }
            // Heads and indices: mostly sane, sometimes anything.
            let next = generator.chance(20) ? UInt16(65535 - generator.below(4)) : UInt16(truncatingIfNeeded: generator.random.next())
            let published = generator.chance(90) ? UInt16(generator.below(queueSize + 1)) : UInt16(truncatingIfNeeded: generator.random.next())
            let availableIndex = next &+ published
            var ring: [UInt16] = []
            for _ in 0..<queueSize {
                ring.append(generator.chance(90) ? UInt16(generator.below(queueSize)) : UInt16(generator.below(queueSize * 2 + 2)))
            }
            random = generator.random
            for (slot, head) in ring.enumerated() {
                RingMemory.storeUInt16(head, arena.availableRing.pointer, offset: SplitRing.availableEntryOffset(slot: slot))
            }
            RingMemory.storeReleaseUInt16(availableIndex, arena.availableRing.pointer, offset: SplitRing.availableIndexOffset)

            let layout = try SplitQueue.Layout.translate(queueSize: queueSize, descriptorTable: arena.descriptorTable.guestPhysicalAddress,
                                                         availableRing: arena.availableRing.guestPhysicalAddress,
                                                         usedRing: arena.usedRing.guestPhysicalAddress, memory: fixture.memory)
            var queue = SplitQueue(layout: layout, features: indirectAllowed ? [.indirectDescriptors] : [],
                                   nextAvailableIndex: next, maximumSegments: maximumSegments)
            let model = ReferenceWalker(
                regions: fixture.memory.regions.map { .init(start: $0.guestPhysicalStart.rawValue, size: $0.size) },
                queueSize: queueSize, indirectAllowed: indirectAllowed, segmentCapacity: queue.maximumSegments,
                read: { address, count in try? fixture.ram.read(count, at: gpa(address)) })

            for _ in 0...queueSize {
                let expected = model.pop(descriptorTable: arena.descriptorTable.guestPhysicalAddress.rawValue,
                                         availableRing: ring, availableIndex: availableIndex, next: queue.nextAvailableIndex)
                let before = queue.nextAvailableIndex
                let actual: ReferenceWalker.Outcome
                do {
                    if let chain = try queue.popAvailable(memory: fixture.memory) {
                        for segment in Array(chain.readable) + Array(chain.writable) {
                            #expect(Self.insideAMapping(segment, fixture.memory), "segment outside guest memory (seed \(seed))")
                        }
                        // Touch every byte the device was given.
                        var sink = [UInt8](repeating: 0, count: min(chain.readableByteCount, 0x1_0000))
                        _ = sink.withUnsafeMutableBytes { chain.copyReadableBytes(into: $0) }
                        #expect(chain.readableByteCount == chain.readable.reduce(0) { $0 + $1.length })
                        #expect(chain.writableByteCount == chain.writable.reduce(0) { $0 + $1.length })
                        actual = .chain(head: chain.headIndex, readable: fixture.ranges(chain.readable), writable: fixture.ranges(chain.writable))
                        #expect(queue.nextAvailableIndex == before &+ 1)
                        chainsPopped += 1
                        // The model walks heads only; the device completes each at once, so a
                        // head the generator repeats is not outstanding any more.
                        let completed = queue.pushUsed(head: chain.headIndex, writtenLength: 0)
                        #expect(completed)
                    } else {
                        actual = .empty
                    }
                } catch {
                    actual = .error(error)
                    errorsSeen[String(describing: error).prefix { $0 != "(" }.description, default: 0] += 1
                    #expect(queue.nextAvailableIndex == before)
                    #expect(queue.isBroken)
                }
                #expect(actual == expected, "seed \(seed)")
                if actual == .empty { break }
                if case .error = actual { break }
            }
        }
        // The generator must reach both outcomes, and most rules.
        // Every rule but the 4 GiB total (which needs a bigger region) shows up, with both
        // outcomes common.
        #expect(chainsPopped > 500)
        #expect(errorsSeen.count >= 12, "errors seen: \(errorsSeen)")
    }

    /// A second thread plays a guest that rewrites descriptors, indirect tables and ring entries
    /// while the device walks them: whatever it sees, the walk must neither trap nor hand out a
    /// segment outside guest memory (descriptors are copied before they are checked).
    @Test func concurrentlyScribblingGuestCannotMakeTheWalkEscapeGuestMemory() throws {
        let arena = try Arena()
        let fixture = arena.fixture
        let queueSize = 8
        // Start from well-formed tables, so some walks succeed before being torn.
        var random = SplitMix64(seed: 42)
        var generator = Generator(random: random, arena: arena, queueSize: queueSize)
        for (index, descriptor) in generator.descriptors(count: queueSize, indexLimit: queueSize).enumerated() {
            descriptor.store(to: arena.descriptorTable.pointer + 16 * index)
        }
        random = generator.random

        // Places the scribbler rewrites: the descriptor table and the avail ring entries, and the
        // indirect tables in region 0.
        let targets: [(UInt, Int)] = [
            (UInt(bitPattern: arena.descriptorTable.pointer), 16 * queueSize),
            (UInt(bitPattern: arena.availableRing.pointer) + 4, 2 * queueSize),
        ] + arena.indirectTables.dropLast().compactMap { table in
            fixture.ram.pointer(gpa(table), length: 16 * RandomizedWalkTests.tableEntries).map { (UInt(bitPattern: $0), 16 * RandomizedWalkTests.tableEntries) }
        }
        let stop = StopFlag()
        let interesting: [UInt64] = [arena.dataStart, GuestFixture.region1Start - 8, GuestFixture.region1End - 8, UInt64.max - 8,
                                     arena.indirectTables[0], arena.indirectTables[4]]
        let writeCount = Counter()
        let scribbler = try TestThread {
            var random = SplitMix64(seed: 7)
            var writes = 0
            while !stop.isSet {
                let (base, length) = targets[Int(random.next() % UInt64(targets.count))]
                let offset = Int(random.next() % UInt64(length / 2)) * 2
                guard let pointer = UnsafeMutableRawPointer(bitPattern: base + UInt(offset)) else { continue }
                switch random.next() % 4 {
                case 0: pointer.storeBytes(of: UInt16(truncatingIfNeeded: random.next() % 20), as: UInt16.self)
                case 1 where offset + 8 <= length && offset % 8 == 0:
                    pointer.storeBytes(of: interesting[Int(random.next() % UInt64(interesting.count))] &+ (random.next() % 64), as: UInt64.self)
                default: pointer.storeBytes(of: UInt16(truncatingIfNeeded: random.next()), as: UInt16.self)
                }
                writes += 1
                if writes % 64 == 0 { writeCount.add(64) }
            }
        }

        var pops = 0
        var chains = 0
        let layout = try SplitQueue.Layout.translate(queueSize: queueSize, descriptorTable: arena.descriptorTable.guestPhysicalAddress,
                                                     availableRing: arena.availableRing.guestPhysicalAddress,
                                                     usedRing: arena.usedRing.guestPhysicalAddress, memory: fixture.memory)
        var queue = SplitQueue(layout: layout, features: [.indirectDescriptors])
        // On a loaded machine the scribbler may not run at once: walk only while it scribbles, and
        // until it has scribbled a fair amount (bounded in time).
        let deadline = ContinuousClock.now + .seconds(30)
        while writeCount.value == 0 && ContinuousClock.now < deadline { usleep(1_000) }
        while (pops < 100_000 || writeCount.value < 10_000) && ContinuousClock.now < deadline {
            if queue.isBroken {
                queue = SplitQueue(layout: layout, features: [.indirectDescriptors], nextAvailableIndex: queue.nextAvailableIndex)
            }
            // Keep a few heads available.
            RingMemory.storeReleaseUInt16(queue.nextAvailableIndex &+ UInt16(1 + random.next() % UInt64(queueSize)),
                                          arena.availableRing.pointer, offset: SplitRing.availableIndexOffset)
            pops += 1
            guard let chain = try? queue.popAvailable(memory: fixture.memory) else { continue }
            chains += 1
            for segment in Array(chain.readable) + Array(chain.writable) where !Self.insideAMapping(segment, fixture.memory) {
                Issue.record("segment outside guest memory")
            }
        }
        stop.set()
        scribbler.join()
        #expect(writeCount.value > 0)
        #expect(chains > 0)
    }

    static func bytes(_ descriptor: SplitDescriptor) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { descriptor.store(to: $0.baseAddress!) }
        return bytes
    }

    static func insideAMapping(_ segment: BufferSegment, _ memory: GuestMemory) -> Bool {
        let start = UInt(bitPattern: segment.pointer)
        return segment.length > 0 && memory.regions.contains { region in
            let base = UInt(bitPattern: region.hostStart)
            return start >= base && start - base < UInt(region.size) && UInt(segment.length) <= UInt(region.size) - (start - base)
        }
    }
}

/// A flag one test thread sets and another polls.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// A total another thread adds to.
final class Counter: Sendable {
    private let total = Atomic<Int>(0)
    var value: Int { total.load(ordering: .relaxed) }
    func add(_ amount: Int) { total.add(amount, ordering: .relaxed) }
}
