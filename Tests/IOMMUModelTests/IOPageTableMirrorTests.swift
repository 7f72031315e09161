import IOMMUModel
import PropertyBased
import Testing

/// `IOPageTableMirror` keeps the page table a faithful subset of the IOTLB through UPDATE and
/// INVALIDATE, and translates exactly as the IOTLB alone does.
@Suite struct IOPageTableMirrorTests {
    static let page: UInt64 = 1 << 12
    static let mib: UInt64 = 1 << 20
    static let gib: UInt64 = 1 << 30
    static let top = IOPageTable.iovaLimit
    static let user: UInt64 = 0x7f40_0000_0000

    /// Translates with a generous segment buffer and merges segments contiguous in user space,
    /// so that results of the two structures compare whatever their segmentation.
    static func normalized(capacity: Int = 512,
                           _ translate: (UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation)
        -> (IOTLBTranslation, [IOTLBSegment]) {
        var storage = [IOTLBSegment](repeating: IOTLBSegment(userAddress: 0, length: 0), count: capacity)
        let result = storage.withUnsafeMutableBufferPointer { translate($0) }
        guard case .translated(let count) = result else { return (result, []) }
        var merged: [IOTLBSegment] = []
        for segment in storage.prefix(count) {
            if let last = merged.last, last.userAddress + last.length == segment.userAddress {
                merged[merged.count - 1].length += segment.length
            } else {
                merged.append(segment)
            }
        }
        return (.translated(segmentCount: merged.count), merged)
    }

    static func viaMirror(_ mirror: IOPageTableMirror, _ iova: UInt64, _ length: UInt64,
                          _ access: IOMMUAccess = .read) -> (IOTLBTranslation, [IOTLBSegment]) {
        normalized { mirror.translate(iova: iova, length: length, access: access, into: $0) }
    }

    static func viaCache(_ cache: inout IOPageTableMirrorCache, _ mirror: IOPageTableMirror, _ iova: UInt64,
                         _ length: UInt64, _ access: IOMMUAccess = .read) -> (IOTLBTranslation, [IOTLBSegment]) {
        normalized { cache.translate(mirror, iova: iova, length: length, access: access, into: $0) }
    }

    static func viaIOTLB(_ mirror: IOPageTableMirror, _ iova: UInt64, _ length: UInt64,
                         _ access: IOMMUAccess = .read, capacity: Int = 512) -> (IOTLBTranslation, [IOTLBSegment]) {
        normalized(capacity: capacity) { mirror.iotlb.translate(iova: iova, length: length, access: access, into: $0) }
    }

    /// Every page-table leaf agrees with the IOTLB on its whole range, for both accesses.
    static func pageTableAgreesWithIOTLB(_ mirror: IOPageTableMirror) -> [String] {
        var problems: [String] = []
        mirror.pageTable.forEachLeaf { iova, size, userAddress, permission in
            guard problems.count < 3 else { return }
            // Quick: the leaf lies inside one IOTLB entry with the same mapping (the usual case,
            // since every UPDATE / INVALIDATE boundary splits leaves). Otherwise check what the
            // IOTLB translates, byte-exact, for both accesses.
            if let (range, entry) = mirror.iotlb.entries.lookup(iova), size - 1 <= range.upperBound - iova,
               entry.permission == permission, entry.userAddress &+ (iova - range.lowerBound) == userAddress {
                return
            }
            for access in [IOMMUAccess.read, .write] {
                let allowed = permission.contains(access == .read ? .read : .write)
                let expected: (IOTLBTranslation, [IOTLBSegment]) = allowed
                    ? (.translated(segmentCount: 1), [IOTLBSegment(userAddress: userAddress, length: size)])
                    : (.permissionFault(iova: iova, needed: access), [])
                let got = viaIOTLB(mirror, iova, size, access, capacity: 2)
                if got.0 != expected.0 || got.1 != expected.1 {
                    problems.append("leaf 0x\(String(iova, radix: 16)) (\(size) bytes, \(access)): IOTLB says \(got), table \(expected)")
                }
            }
        }
        return problems
    }

    // MARK: Behaviour

    @Test func mirrorsAlignedUpdatesWithHugeLeaves() throws {
        var mirror = IOPageTableMirror()
        try mirror.update(iova: 2 * Self.mib, size: 2 * Self.mib, userAddress: Self.user, permission: .readWrite)
        #expect(mirror.pageTable.walk(iova: 3 * Self.mib)?.leafSize == 2 * Self.mib)
        #expect(Self.viaMirror(mirror, 3 * Self.mib, 0x1000).1 == [IOTLBSegment(userAddress: Self.user + Self.mib, length: 0x1000)])
        #expect(mirror.unmirroredUpdates == 0)
    }

    @Test func keepsUnalignedUpdatesInTheRangeStoreOnly() throws {
        var mirror = IOPageTableMirror()
        try mirror.update(iova: 0x1800, size: 0x1000, userAddress: 0x9800, permission: .read)
        #expect(mirror.pageTable.walk(iova: 0x2000) == nil)
        #expect(mirror.unmirroredUpdates == 1)
        #expect(Self.viaMirror(mirror, 0x1800, 0x1000) == Self.viaIOTLB(mirror, 0x1800, 0x1000))
        #expect(Self.viaMirror(mirror, 0x1800, 0x1000).1 == [IOTLBSegment(userAddress: 0x9800, length: 0x1000)])
    }

    @Test func unalignedUpdateOverMirroredPagesRemovesThemFromTheTable() throws {
        var mirror = IOPageTableMirror()
        try mirror.update(iova: 0x1000, size: 0x2000, userAddress: 0x10000, permission: .readWrite)
        try mirror.update(iova: 0x1800, size: 0x1000, userAddress: 0x50000, permission: .read)
        #expect(mirror.pageTable.walk(iova: 0x1000) == nil)
        #expect(mirror.pageTable.walk(iova: 0x2000) == nil)
        #expect(Self.viaMirror(mirror, 0x1000, 0x2000) == Self.viaIOTLB(mirror, 0x1000, 0x2000))
        #expect(Self.pageTableAgreesWithIOTLB(mirror).isEmpty)
    }

    @Test func invalidateSplitsAMirroredHugeLeaf() throws {
        var mirror = IOPageTableMirror()
        try mirror.update(iova: Self.gib, size: Self.gib, userAddress: Self.user, permission: .readWrite)
        mirror.invalidate(iova: Self.gib + 0x5000, size: 0x1000)
        #expect(Self.viaMirror(mirror, Self.gib + 0x4000, 0x2000).0 == .miss(iova: Self.gib + 0x5000))
        #expect(mirror.pageTable.walk(iova: Self.gib + 0x4000)?.leafSize == Self.page)
        #expect(mirror.pageTable.walk(iova: Self.gib + 2 * Self.mib)?.leafSize == 2 * Self.mib)
        #expect(Self.pageTableAgreesWithIOTLB(mirror).isEmpty)
    }

    @Test func unalignedInvalidateRemovesEveryPageItTouches() throws {
        var mirror = IOPageTableMirror()
        try mirror.update(iova: 0, size: 0x4000, userAddress: 0x10000, permission: .read)
        mirror.invalidate(iova: 0x1800, size: 0x1000)  // touches pages 0x1000 and 0x2000
        #expect(mirror.pageTable.walk(iova: 0x1000) == nil && mirror.pageTable.walk(iova: 0x2000) == nil)
        #expect(mirror.pageTable.walk(iova: 0x3000) != nil)
        #expect(Self.viaMirror(mirror, 0x1000, 0x800) == Self.viaIOTLB(mirror, 0x1000, 0x800))
        #expect(Self.viaMirror(mirror, 0x1000, 0x1000).0 == .miss(iova: 0x1800))
    }

    @Test func invalidateOfTheWholeSpaceEmptiesBothWithoutTrapping() throws {
        var mirror = IOPageTableMirror()
        try mirror.update(iova: Self.top - Self.gib, size: Self.gib, userAddress: Self.user, permission: .read)
        try mirror.update(iova: 0, size: 0x1000, userAddress: 0, permission: .read)
        mirror.invalidate(iova: UInt64.max, size: UInt64.max)
        mirror.invalidate(iova: 0, size: UInt64.max)
        #expect(mirror.pageTable.tablesInUse == 1)
        #expect(Self.viaMirror(mirror, 0, 1).0 == .miss(iova: 0))
        #expect(Self.viaMirror(mirror, Self.top - 1, 1).0 == .miss(iova: Self.top - 1))
    }

    @Test func invalidateOfSizeZeroEmptiesBoth() throws {
        var mirror = IOPageTableMirror()
        try mirror.update(iova: Self.gib, size: Self.gib, userAddress: Self.user, permission: .read)
        mirror.invalidate(iova: 0x1234, size: 0)  // QEMU's "all 2^64 bytes"
        #expect(mirror.pageTable.tablesInUse == 1)
        #expect(Self.viaMirror(mirror, Self.gib, 1).0 == .miss(iova: Self.gib))
    }

    @Test func appliesMessagesAsTheIOTLBDoes() throws {
        var mirror = IOPageTableMirror()
        try mirror.apply(.update(iova: 0, size: 2 * Self.mib, userAddress: Self.user, permission: .read))
        try mirror.apply(.invalidate(iova: 0x1000, size: 0x1000))
        #expect(mirror.pageTable.walk(iova: 0x1000) == nil)
        #expect(mirror.pageTable.walk(iova: 0x2000)?.userAddress == Self.user + 0x2000)
        #expect(throws: IOTLBError.emptyRange) { try mirror.apply(.update(iova: 0, size: 0, userAddress: 0, permission: .read)) }
        #expect(Self.pageTableAgreesWithIOTLB(mirror).isEmpty)
    }

    @Test func updatesBeyondTheAddressWidthStayInTheRangeStore() throws {
        var mirror = IOPageTableMirror()
        try mirror.update(iova: Self.top - 0x1000, size: 0x2000, userAddress: 0x4000, permission: .read)
        #expect(mirror.unmirroredUpdates == 1)
        #expect(mirror.pageTable.walk(iova: Self.top - 0x1000) == nil)
        #expect(Self.viaMirror(mirror, Self.top - 0x800, 0x1000).1 == [IOTLBSegment(userAddress: 0x4800, length: 0x1000)])
    }

    @Test func permissionFaultFromTheTableMatchesTheIOTLB() throws {
        var mirror = IOPageTableMirror()
        try mirror.update(iova: 0x10000, size: 0x1000, userAddress: 0x5000, permission: .read)
        #expect(Self.viaMirror(mirror, 0x10000, 0x10, .write) == Self.viaIOTLB(mirror, 0x10000, 0x10, .write))
        #expect(Self.viaMirror(mirror, 0x10000, 0x10, .write).0 == .permissionFault(iova: 0x10000, needed: .write))
    }

    @Test func fullTablePoolFallsBackToTheRangeStore() throws {
        var mirror = IOPageTableMirror(tableLimit: 3, preallocatedTables: 1)
        try mirror.update(iova: 0, size: 2 * Self.mib, userAddress: Self.user, permission: .readWrite)
        try mirror.update(iova: 4 * Self.mib, size: 0x1000, userAddress: 0x3000, permission: .read)
        #expect(mirror.unmirroredUpdates == 1)
        // Splitting the 2 MiB leaf needs a table the pool does not have: the leaf goes whole.
        mirror.invalidate(iova: 0x1000, size: 0x1000)
        #expect(mirror.pageTable.walk(iova: 0) == nil)
        #expect(Self.viaMirror(mirror, 0, 0x3000) == Self.viaIOTLB(mirror, 0, 0x3000))
        #expect(Self.viaMirror(mirror, 4 * Self.mib, 0x10).1 == [IOTLBSegment(userAddress: 0x3000, length: 0x10)])
        #expect(Self.pageTableAgreesWithIOTLB(mirror).isEmpty)
    }

    @Test func cacheIsNeverStaleAfterAnInvalidation() throws {
        var mirror = IOPageTableMirror()
        var cache = IOPageTableMirrorCache()
        try mirror.update(iova: 0, size: 2 * Self.mib, userAddress: Self.user, permission: .read)
        #expect(Self.viaCache(&cache, mirror, 0x1000, 0x100).1 == [IOTLBSegment(userAddress: Self.user + 0x1000, length: 0x100)])
        #expect(Self.viaCache(&cache, mirror, 0x2000, 0x100).1 == [IOTLBSegment(userAddress: Self.user + 0x2000, length: 0x100)])
        mirror.invalidate(iova: 0x2000, size: 0x1000)
        #expect(Self.viaCache(&cache, mirror, 0x2000, 0x100).0 == .miss(iova: 0x2000))
        try mirror.update(iova: 0x2000, size: 0x1000, userAddress: 0x9000, permission: .write)
        #expect(Self.viaCache(&cache, mirror, 0x2000, 0x100, .write).1 == [IOTLBSegment(userAddress: 0x9000, length: 0x100)])
        #expect(Self.viaCache(&cache, mirror, 0x2000, 0x100, .read).0 == .permissionFault(iova: 0x2000, needed: .read))
    }

    @Test func cacheIsNeverStaleForACopyChangedSeparately() throws {
        var mirror = IOPageTableMirror()
        var cache = IOPageTableMirrorCache()
        try mirror.update(iova: 0, size: 0x1000, userAddress: 0x5000, permission: .read)
        var copy = mirror
        copy.invalidate(iova: 0, size: 0x1000)
        _ = Self.viaCache(&cache, mirror, 0, 0x10)
        #expect(Self.viaCache(&cache, copy, 0, 0x10).0 == .miss(iova: 0))
    }

    @Test func cacheAnswersUnmirroredEntriesAndBuffersAcrossLeaves() throws {
        var mirror = IOPageTableMirror()
        var cache = IOPageTableMirrorCache()
        try mirror.update(iova: 0x1800, size: 0x1000, userAddress: 0x9800, permission: .read)  // unaligned
        #expect(Self.viaCache(&cache, mirror, 0x1900, 0x10) == Self.viaIOTLB(mirror, 0x1900, 0x10))
        #expect(Self.viaCache(&cache, mirror, 0x1a00, 0x10) == Self.viaIOTLB(mirror, 0x1a00, 0x10))
        try mirror.update(iova: 0x10000, size: 0x2000, userAddress: 0x20000, permission: .read)
        #expect(Self.viaCache(&cache, mirror, 0x10800, 0x1000).1 == [IOTLBSegment(userAddress: 0x20800, length: 0x1000)])
        #expect(Self.viaCache(&cache, mirror, 0x10800, 0x2000).0 == .miss(iova: 0x12000))
    }

    // MARK: Property

    enum Step: Sendable, CustomStringConvertible {
        case update(iova: UInt64, size: UInt64, userAddress: UInt64, permission: IOMMUPermission)
        case invalidate(iova: UInt64, size: UInt64)

        var description: String {
            func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
            switch self {
            case .update(let iova, let size, let user, let permission):
                return "update(\(hex(iova)), \(hex(size)), \(hex(user)), \(permission.contains(.read) ? "r" : "")\(permission.contains(.write) ? "w" : ""))"
            case .invalidate(let iova, let size): return "invalidate(\(hex(iova)), \(hex(size)))"
            }
        }
    }

    /// Windows at 0, across 1 GiB and at the top of 48 bits (plus beyond it); aligned and
    /// unaligned ranges, 2 MiB-aligned ones for huge leaves, whole-space invalidations.
    static let steps = Generator<[Step], Shrink.None<[Step]>> { rng in
        var random = rng
        func below(_ bound: UInt64) -> UInt64 { random.next() % bound }
        let windows: [UInt64] = [0, gib - 2 * mib, top - 4 * mib]
        let window: UInt64 = 4 * mib
        return (0..<(30 + Int(below(40)))).map { _ in
            let base = windows[Int(below(UInt64(windows.count)))]
            var iova: UInt64
            var size: UInt64
            switch below(10) {
            case 0...3: iova = base + below(window / page) * page; size = (1 + below(16)) * page
            case 4, 5: iova = base + below(window / (2 * mib)) * 2 * mib; size = (1 + below(2)) * 2 * mib
            case 6, 7: iova = base + below(window); size = 64 + below(3 * page)  // unaligned
            case 8: iova = top - below(4) * page; size = (1 + below(8)) * page  // may cross 2^48
            default: iova = base + below(window / page) * page; size = below(window)
            }
            if below(100) < 40 {
                if below(20) == 0 { return .invalidate(iova: below(2) == 0 ? 0 : iova, size: [0, UInt64.max, UInt64.max - 1][Int(below(3))]) }
                return .invalidate(iova: iova, size: size)
            }
            if size == 0 { size = page }
            let userAddress = below(3) == 0 ? below(1 << 36) * page + (iova % page) : Self.user + iova % gib
            let permission: IOMMUPermission = [.read, .write, .readWrite][Int(below(3))]
            return .update(iova: iova, size: size, userAddress: userAddress, permission: permission)
        }
    }

    /// After every step the mirror, with and without a cache kept across steps, translates random
    /// buffers exactly as the IOTLB alone, and every page-table leaf agrees with the IOTLB.
    @Test(arguments: [IOPageTable.defaultTableLimit, 5])
    func randomUpdatesAndInvalidationsKeepTheMirrorFaithful(tableLimit: Int) async {
        await propertyCheck(count: 60, input: Self.steps) { steps in
            var mirror = IOPageTableMirror(tableLimit: tableLimit, preallocatedTables: 2)
            var cache = IOPageTableMirrorCache()
            var probe = SplitMix(state: UInt64(steps.count))
            var updates = 0
            var accepted = 0
            var alignedAccepted = 0
            var mirroredLeaves = 0
            for (index, step) in steps.enumerated() {
                switch step {
                case .update(let iova, let size, let user, let permission):
                    updates += 1
                    do {
                        try mirror.update(iova: iova, size: size, userAddress: user, permission: permission)
                        accepted += 1
                        if (iova | size | user) % Self.page == 0, iova < Self.top { alignedAccepted += 1 }
                    } catch {
                        // Refusals must be the IOTLB's own (an entry limit, a wrapping range):
                        // the mirror never refuses what the IOTLB takes.
                        var alone = mirror.iotlb
                        if (try? alone.update(iova: iova, size: size, userAddress: user, permission: permission)) != nil {
                            Issue.record("step \(index) \(step): the mirror refused (\(error)) what the IOTLB takes")
                            return
                        }
                    }
                    var leaves = 0
                    mirror.pageTable.forEachLeaf { _, _, _, _ in leaves += 1 }
                    mirroredLeaves = max(mirroredLeaves, leaves)
                case .invalidate(let iova, let size):
                    mirror.invalidate(iova: iova, size: size)
                }
                var problems = Self.pageTableAgreesWithIOTLB(mirror)
                let windows: [UInt64] = [0, Self.gib - 2 * Self.mib, Self.top - 4 * Self.mib]
                for _ in 0..<16 {
                    let iova = windows[Int(probe.next() % 3)] + probe.next() % (4 * Self.mib)
                    let length = 1 + probe.next() % (4 * Self.page)
                    let access: IOMMUAccess = probe.next() % 2 == 0 ? .read : .write
                    let fast = Self.viaMirror(mirror, iova, length, access)
                    let slow = Self.viaIOTLB(mirror, iova, length, access)
                    if fast.0 != slow.0 || fast.1 != slow.1 {
                        problems.append("translate(0x\(String(iova, radix: 16)), \(length), \(access)): mirror \(fast), IOTLB \(slow)")
                    }
                    // Through the cache kept across steps: the buffer, then one nearby (often a hit).
                    let nearby = iova &+ probe.next() % 64
                    for address in [iova, nearby] {
                        let cached = Self.viaCache(&cache, mirror, address, length, access)
                        let truth = Self.viaIOTLB(mirror, address, length, access)
                        if cached.0 != truth.0 || cached.1 != truth.1 {
                            problems.append("cached translate(0x\(String(address, radix: 16)), \(length), \(access)): \(cached), IOTLB \(truth)")
                        }
                    }
                }
                let violations = mirror.pageTable.invariantViolations()
                if !violations.isEmpty { problems.append("invariants: \(violations.prefix(3))") }
                if !problems.isEmpty {
                    Issue.record("step \(index) \(step): \(problems.prefix(3))")
                    return
                }
            }
            // The sequence did what it meant to: every update was taken (the generator makes only
            // ranges the IOTLB accepts), and aligned ones reached the page table, not only the
            // range store.
            if accepted != updates || (alignedAccepted > 0 && mirroredLeaves == 0) {
                Issue.record("\(accepted) of \(updates) updates taken, \(alignedAccepted) aligned, at most \(mirroredLeaves) leaves")
            }
        }
    }

    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
