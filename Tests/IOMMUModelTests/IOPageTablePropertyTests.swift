import IOMMUModel
import PropertyBased
import Testing

/// Random map / unmap / translate sequences on `IOPageTable`, compared after every step with a
/// page-by-page dictionary: the same outcome (or the same error), the same page → user address
/// and permission for every page, the largest leaves alignment allows for what was just mapped,
/// and sound tables (`invariantViolations()`).
@Suite struct IOPageTablePropertyTests {
    static let page: UInt64 = 1 << 12
    static let mib: UInt64 = 1 << 20
    static let gib: UInt64 = 1 << 30
    static let top = IOPageTable.iovaLimit

    // MARK: Reference model

    /// Every mapped 4 KiB page, keyed by page number.
    struct Reference {
        struct Page: Equatable {
            var userAddress: UInt64
            var permission: IOMMUPermission
        }
        var pages: [UInt64: Page] = [:]

        /// The error `IOPageTable` must throw, in its documented order, or nil.
        static func error(iova: UInt64, size: UInt64, userAddress: UInt64,
                          permission: IOMMUPermission?) -> IOPageTableError? {
            if size == 0 { return .emptyRange }
            if iova % page != 0 || size % page != 0 || userAddress % page != 0 {
                return .misaligned(iova: iova, size: size, userAddress: userAddress)
            }
            if iova > top || size > top - iova { return .beyondAddressWidth(iova: iova, size: size) }
            guard let permission else { return nil }
            if userAddress > IOPageTableEntry.frameLimit || size > IOPageTableEntry.frameLimit - userAddress {
                return .userAddressBeyondFrameField(userAddress: userAddress, size: size)
            }
            if permission.isEmpty { return .emptyPermission }
            return nil
        }

        mutating func map(iova: UInt64, size: UInt64, userAddress: UInt64, permission: IOMMUPermission) {
            for index in 0..<(size / page) {
                pages[iova / page + index] = Page(userAddress: userAddress + index * page, permission: permission)
            }
        }

        mutating func unmap(iova: UInt64, size: UInt64) {
            for index in 0..<(size / page) { pages[iova / page + index] = nil }
        }

        /// Translation page by page, merging contiguous pieces, claiming a segment when it
        /// starts (the IOTLB's order of results).
        func translate(iova: UInt64, length: UInt64, access: IOMMUAccess, capacity: Int)
            -> (IOTLBTranslation, [IOTLBSegment]) {
            var segments: [IOTLBSegment] = []
            var current = iova
            var remaining = length
            while remaining != 0 {
                guard current < top, let mapped = pages[current / page] else { return (.miss(iova: current), []) }
                let needed: IOMMUPermission = access == .read ? .read : .write
                guard mapped.permission.contains(needed) else { return (.permissionFault(iova: current, needed: access), []) }
                let offset = current % page
                let piece = min(page - offset, remaining)
                let address = mapped.userAddress + offset
                if let last = segments.last, last.userAddress + last.length == address {
                    segments[segments.count - 1].length += piece
                } else {
                    guard segments.count < capacity else { return (.needsMoreSegments, []) }
                    segments.append(IOTLBSegment(userAddress: address, length: piece))
                }
                current += piece
                remaining -= piece
            }
            return (.translated(segmentCount: segments.count), segments)
        }
    }

    // MARK: Operations

    enum Operation: Sendable, CustomStringConvertible {
        case map(iova: UInt64, size: UInt64, userAddress: UInt64, permission: IOMMUPermission)
        case unmap(iova: UInt64, size: UInt64)
        case removeLeaves(ClosedRange<UInt64>)
        case translate(iova: UInt64, length: UInt64, access: IOMMUAccess, capacity: Int)

        var description: String {
            func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
            switch self {
            case .map(let iova, let size, let user, let permission):
                return "map(\(hex(iova)), \(hex(size)), user: \(hex(user)), \(permission.rawValue))"
            case .unmap(let iova, let size): return "unmap(\(hex(iova)), \(hex(size)))"
            case .removeLeaves(let range): return "removeLeaves(\(hex(range.lowerBound))...\(hex(range.upperBound)))"
            case .translate(let iova, let length, let access, let capacity):
                return "translate(\(hex(iova)), \(hex(length)), \(access), capacity: \(capacity))"
            }
        }
    }

    /// Draws operations over a few windows of the IOVA space.
    struct Dice {
        var rng: any SeededRandomNumberGenerator
        /// Window starts: at 0, across a 1 GiB boundary, across a 512 GiB boundary (a new
        /// level-3 table), and the top of the addressable range.
        let windows: [UInt64]
        let windowSize: UInt64

        mutating func below(_ bound: UInt64) -> UInt64 { rng.next() % bound }
        mutating func chance(_ percent: UInt64) -> Bool { below(100) < percent }
        mutating func pick<T>(_ choices: [T]) -> T { choices[Int(below(UInt64(choices.count)))] }

        mutating func permission() -> IOMMUPermission { pick([.read, .write, .readWrite]) }

        /// An aligned range inside a window: small, medium, 2 MiB-aligned or the whole window.
        mutating func range() -> (iova: UInt64, size: UInt64) {
            let window = pick(windows)
            let pages = windowSize / page
            switch below(10) {
            case 0...3:
                let size = 1 + below(16)
                return (window + below(pages - size + 1) * page, size * page)
            case 4...6:
                let size = 1 + below(pages / 2)
                return (window + below(pages - size + 1) * page, size * page)
            case 7, 8:
                let chunks = windowSize / (2 * mib)
                let size = 1 + below(chunks)
                return (window + below(chunks - size + 1) * 2 * mib, size * 2 * mib)
            default:
                return (window, windowSize)
            }
        }

        /// A user address for `iova`: congruent modulo 1 GiB (huge leaves possible), any page,
        /// or at the very top of what the frame field holds.
        mutating func userAddress(iova: UInt64, size: UInt64) -> UInt64 {
            switch below(10) {
            case 0...5: return 0x7f00_0000_0000 + iova % gib
            case 6...8: return below(1 << 28) * page
            default: return IOPageTableEntry.frameLimit - size - below(4) * page
            }
        }

        mutating func operation() -> Operation {
            switch below(100) {
            case 0..<40:
                let (iova, size) = range()
                return .map(iova: iova, size: size, userAddress: userAddress(iova: iova, size: size),
                            permission: permission())
            case 40..<65:
                let (iova, size) = range()
                return .unmap(iova: iova, size: size)
            case 65..<90:
                let window = pick(windows)
                let iova = window + below(windowSize)
                let length = chance(70) ? 1 + below(2 * page) : below(windowSize)
                return .translate(iova: iova, length: length, access: chance(50) ? .read : .write,
                                  capacity: Int(1 + below(4)))
            case 90..<93:
                let first = pick(windows) + below(windowSize)
                return .removeLeaves(first...(first + below(4 * mib)))
            default:
                return invalid()
            }
        }

        /// Requests the table must refuse, one rule each.
        mutating func invalid() -> Operation {
            var (iova, size) = range()
            var user = userAddress(iova: iova, size: size)
            var permission = permission()
            switch below(7) {
            case 0: iova += 1 + below(page - 1)
            case 1: size = size - page + 1 + below(page - 1)
            case 2: user += 1 + below(page - 1)
            case 3: size = 0
            case 4: iova = top - below(4) * page; size = (4 + below(8)) * page  // runs past 2^48
            case 5: user = IOPageTableEntry.frameLimit - size + page * (1 + below(4))
            default: permission = []
            }
            if below(4) == 0 { return .unmap(iova: iova, size: size) }
            return .map(iova: iova, size: size, userAddress: user, permission: permission)
        }
    }

    static func operations(windows: [UInt64], windowSize: UInt64, count: ClosedRange<Int>)
        -> Generator<[Operation], Shrink.None<[Operation]>> {
        Generator { rng in
            var dice = Dice(rng: rng, windows: windows, windowSize: windowSize)
            let length = count.lowerBound + Int(dice.below(UInt64(count.count)))
            return (0..<length).map { _ in dice.operation() }
        }
    }

    // MARK: Running and comparing

    /// How thoroughly to compare after each step.
    enum Comparison {
        /// Every page of the reference (and the page count).
        case full
        /// The pages of the step's range and its neighbours, `samples` random reference pages,
        /// the page count and the invariants; a full comparison ends the sequence.
        case touched(samples: Int)
    }

    /// The largest leaf `map(iova, size, userAddress)` should use for the page at `address`.
    static func expectedLeafSize(at address: UInt64, iova: UInt64, size: UInt64, userAddress: UInt64) -> UInt64 {
        for leaf in [gib, 2 * mib] {
            let start = address & ~(leaf - 1)
            if start >= iova && start + leaf <= iova + size && (userAddress + (start - iova)) % leaf == 0 {
                return leaf
            }
        }
        return page
    }

    /// Applies `operations` to a table (limited to `tableLimit`) and the reference; returns the
    /// first few mismatches found.
    static func run(_ operations: [Operation], tableLimit: Int = IOPageTable.defaultTableLimit,
                    comparison: Comparison) -> [String] {
        var table = IOPageTable(tableLimit: tableLimit, preallocatedTables: 4)
        var reference = Reference()
        var problems: [String] = []
        var sampler = UInt64(0x9E37_79B9_7F4A_7C15)
        for (step, operation) in operations.enumerated() {
            let label = "step \(step) \(operation)"
            var touched: ClosedRange<UInt64>?
            switch operation {
            case .map(let iova, let size, let user, let permission):
                let expected = Reference.error(iova: iova, size: size, userAddress: user, permission: permission)
                do throws(IOPageTableError) {
                    try table.map(iova: iova, size: size, userAddress: user, permission: permission)
                    if let expected { problems.append("\(label): mapped, expected \(expected)") }
                    reference.map(iova: iova, size: size, userAddress: user, permission: permission)
                    touched = iova...(iova + size - 1)
                    // The rule is uniform within a 2 MiB chunk: check the first page of each.
                    var address = iova
                    while address < iova + size {
                        defer { address = (address | (2 * mib - 1)) + 1 }
                        let want = expectedLeafSize(at: address, iova: iova, size: size, userAddress: user)
                        let got = table.walk(iova: address)?.leafSize
                        if got != want {
                            problems.append("\(label): leaf at 0x\(String(address, radix: 16)) is \(String(describing: got)), expected \(want)")
                            break
                        }
                    }
                } catch {
                    if case .tableLimitReached(let needed, let available) = error, expected == nil {
                        if needed <= available { problems.append("\(label): refused \(error) with room") }
                    } else if error != expected {
                        problems.append("\(label): threw \(error), expected \(String(describing: expected))")
                    }
                }
            case .unmap(let iova, let size):
                let expected = Reference.error(iova: iova, size: size, userAddress: 0, permission: nil)
                do throws(IOPageTableError) {
                    try table.unmap(iova: iova, size: size)
                    if let expected { problems.append("\(label): unmapped, expected \(expected)") }
                    reference.unmap(iova: iova, size: size)
                    touched = iova...(iova + size - 1)
                } catch {
                    if case .tableLimitReached(let needed, let available) = error, expected == nil {
                        if needed <= available { problems.append("\(label): refused \(error) with room") }
                    } else if error != expected {
                        problems.append("\(label): threw \(error), expected \(String(describing: expected))")
                    }
                }
            case .removeLeaves(let range):
                table.removeLeaves(overlapping: range)
                // The range is gone; pages beyond it may go too, but only within the huge
                // leaves (at most 1 GiB) that straddle its ends, and never change.
                let slack = range.lowerBound & ~(gib - 1)...(range.upperBound | (gib - 1))
                for (number, expected) in reference.pages {
                    let address = number * page
                    let got = table.walk(iova: address)
                    if range.overlaps(address...(address + page - 1)) || got == nil {
                        if got != nil { problems.append("\(label): 0x\(String(address, radix: 16)) still mapped") }
                        if !slack.contains(address) { problems.append("\(label): dropped 0x\(String(address, radix: 16)) far away") }
                        reference.pages[number] = nil
                    } else if got?.userAddress != expected.userAddress || got?.permission != expected.permission {
                        problems.append("\(label): 0x\(String(address, radix: 16)) changed")
                    }
                }
            case .translate(let iova, let length, let access, let capacity):
                var storage = [IOTLBSegment](repeating: IOTLBSegment(userAddress: 0, length: 0), count: capacity)
                let result = storage.withUnsafeMutableBufferPointer {
                    table.translate(iova: iova, length: length, access: access, into: $0)
                }
                var segments: [IOTLBSegment] = []
                if case .translated(let count) = result { segments = Array(storage.prefix(count)) }
                let (expected, expectedSegments) = reference.translate(iova: iova, length: length, access: access,
                                                                      capacity: capacity)
                if result != expected || segments != expectedSegments {
                    problems.append("\(label): \(result) \(segments), expected \(expected) \(expectedSegments)")
                }
            }
            if !problems.isEmpty { return problems }
            switch comparison {
            case .full:
                problems += compareAll(table, reference, label: label)
            case .touched(let samples):
                problems += compareCount(table, reference, label: label)
                if let touched {
                    // Every page within 2 MiB of either end (and one page beyond), then the first
                    // and last page of every 2 MiB chunk in between.
                    let first = touched.lowerBound >= page ? touched.lowerBound - page : 0
                    let last = min(touched.upperBound + page, top - 1)
                    var address = first
                    while address <= last && problems.isEmpty {
                        problems += comparePage(table, reference, address: address, label: label)
                        let chunkLast = address | (2 * mib - 1)
                        if address - first >= 2 * mib && last - address >= 2 * mib && address != chunkLast - (page - 1) {
                            address = chunkLast - (page - 1)
                        } else {
                            address += page
                        }
                    }
                }
                if !reference.pages.isEmpty {
                    let keys = Array(reference.pages.keys)
                    for _ in 0..<samples {
                        sampler = sampler &* 6364136223846793005 &+ 1442695040888963407
                        let number = keys[Int(sampler >> 33) % keys.count]
                        problems += comparePage(table, reference, address: number * page, label: label)
                    }
                }
            }
            let violations = table.invariantViolations()
            if !violations.isEmpty { problems.append("\(label): invariants: \(violations.prefix(3))") }
            if !problems.isEmpty { return problems }
        }
        if case .touched = comparison { problems += compareAll(table, reference, label: "end") }
        return problems
    }

    static func comparePage(_ table: IOPageTable, _ reference: Reference, address: UInt64, label: String) -> [String] {
        let offset = (address >> 12) &* 0x9E37 & (page - 1)
        let got = table.walk(iova: address + offset)
        let want = reference.pages[address / page]
        if got?.userAddress != want.map({ $0.userAddress + offset }) || got?.permission != want?.permission {
            return ["\(label): page 0x\(String(address, radix: 16)) walks to \(String(describing: got)), expected \(String(describing: want))"]
        }
        return []
    }

    /// The table maps exactly as many pages as the reference.
    static func compareCount(_ table: IOPageTable, _ reference: Reference, label: String) -> [String] {
        var mapped: UInt64 = 0
        table.forEachLeaf { _, size, _, _ in mapped += size / page }
        return mapped == UInt64(reference.pages.count)
            ? [] : ["\(label): table maps \(mapped) pages, reference \(reference.pages.count)"]
    }

    /// Exact equality: every page of every leaf matches the reference, and the page counts agree.
    static func compareAll(_ table: IOPageTable, _ reference: Reference, label: String) -> [String] {
        var problems: [String] = []
        var mapped = 0
        table.forEachLeaf { iova, size, userAddress, permission in
            for index in 0..<(size / page) where problems.isEmpty {
                let want = reference.pages[iova / page + index]
                if want != Reference.Page(userAddress: userAddress + index * page, permission: permission) {
                    let address = iova + index * page
                    problems.append("\(label): page 0x\(String(address, radix: 16)) of a \(size)-byte leaf maps to 0x\(String(userAddress + index * page, radix: 16)) \(permission.rawValue), expected \(String(describing: want))")
                }
            }
            mapped += Int(size / page)
        }
        if mapped != reference.pages.count {
            problems.append("\(label): table maps \(mapped) pages, reference \(reference.pages.count)")
        }
        return problems
    }

    // MARK: Properties

    /// 4 MiB windows at 0, across 1 GiB, across 512 GiB and at the top of the 48-bit range:
    /// 4 KiB and 2 MiB leaves, splits of 2 MiB leaves, refusals; full comparison every step.
    /// About 3000 operations per run.
    @Test func randomSequencesMatchPageByPageReference() async {
        let windows: [UInt64] = [0, Self.gib - 2 * Self.mib, (1 << 39) - 2 * Self.mib, Self.top - 4 * Self.mib]
        await propertyCheck(count: 50, input: Self.operations(windows: windows, windowSize: 4 * Self.mib, count: 40...80)) {
            operations in
            let problems = Self.run(operations, comparison: .full)
            #expect(problems.isEmpty, "\(problems.prefix(4))")
        }
    }

    /// 1 GiB windows (the second 1 GiB and the top 1 GiB of the range): 1 GiB leaves and their
    /// splitting. Compares each step's range (fully near its ends, two pages per 2 MiB chunk in
    /// between), 256 sampled pages, the page count and the invariants; everything at the end.
    @Test func randomSequencesWithGibibyteLeavesMatchReference() async {
        let windows: [UInt64] = [Self.gib, Self.top - Self.gib]
        await propertyCheck(count: 5, input: Self.operations(windows: windows, windowSize: Self.gib, count: 15...30)) {
            operations in
            let problems = Self.run(operations, comparison: .touched(samples: 256))
            #expect(problems.isEmpty, "\(problems.prefix(4))")
        }
    }

    /// With a pool of 6 tables, map and unmap are often refused: a refusal must leave the table
    /// exactly as it was (the reference is not updated) and only happen without room.
    @Test func refusalsAtTheTableLimitChangeNothing() async {
        let windows: [UInt64] = [0, Self.gib - 2 * Self.mib, Self.top - 4 * Self.mib]
        await propertyCheck(count: 50, input: Self.operations(windows: windows, windowSize: 4 * Self.mib, count: 40...80)) {
            operations in
            let problems = Self.run(operations, tableLimit: 6, comparison: .full)
            #expect(problems.isEmpty, "\(problems.prefix(4))")
        }
    }
}
