import PropertyBased
import Testing

@testable import IOMMUModel

/// Random operation sequences on a ``RangeStore`` and on ``ReferenceRangeStore``, compared after
/// every step (contents, tree invariants, and the answer of the operation itself).
@Suite("RangeStore against a sorted-array model")
struct RangeStorePropertyTests {
    /// One random operation: a kind and three words that become points, sizes and values.
    typealias Operation = (kind: UInt8, a: UInt64, b: UInt64, c: UInt64)

    static let operations = zip(Gen.uint8(), Gen.uint64(), Gen.uint64(), Gen.uint64())
        .map { Operation($0, $1, $2, $3) }
        .array(of: 1...2000)

    @Test func randomOperationSequencesMatchTheModel() async {
        await propertyCheck(count: 12, input: Self.operations) { operations in
            var store = RangeStore<Tag>()
            var model = ReferenceRangeStore<Tag>()
            for (step, operation) in operations.enumerated() {
                Self.apply(operation, to: &store, and: &model)
                guard Self.expectSame(store, model, step: step, operation) else { return }
            }
        }
    }

    /// Dense small ranges in a wider universe, so the tree grows to three levels and shrinks
    /// back through merges and borrows.
    @Test(.shrinking(false)) func deepTreesGrowAndShrinkLikeTheModel() async {
        let operations = zip(Gen.uint8(), Gen.uint64(in: 0...30_000), Gen.uint64(in: 0...3))
            .array(of: 4000...5000)
        await propertyCheck(count: 3, input: operations) { operations in
            var store = RangeStore<Tag>()
            var model = ReferenceRangeStore<Tag>()
            var tallest = 0
            for (step, (kind, first, extra)) in operations.enumerated() {
                tallest = max(tallest, store.height)
                let range = first...(first + extra)
                // Grow for the first half, shrink in the second.
                if (kind & 3 != 0) == (step < operations.count / 2) {
                    store.store(range, Tag(base: first))
                    model.store(range, Tag(base: first))
                } else {
                    store.erase(range)
                    model.erase(range)
                }
                if step % 50 == 0 || step == operations.count - 1 {
                    guard Self.expectSame(store, model, step: step, (kind, first, extra, 0)) else { return }
                    // Free-space searches through a deep tree, where subtree pruning matters.
                    let window = min(first, 29_000)...(min(first, 29_000) + UInt64(kind) * 8)
                    // Sizes equal to (and one above) actual gaps probe the pruning at its boundary.
                    let gaps = model.gaps.dropLast()
                    let sampled = gaps.isEmpty ? [] : [gaps[gaps.startIndex + step % gaps.count], gaps[gaps.startIndex + (step * 7) % gaps.count]]
                    let gapSizes = sampled.flatMap { [$0.upperBound - $0.lowerBound + 1, $0.upperBound - $0.lowerBound + 2] }
                    for size in Array(1...UInt64(4)) + gapSizes {
                        let alignment = UInt64(1) << (UInt64(kind) % 4)
                        #expect(store.allocate(size: size, alignment: alignment, within: window)
                                    == model.allocate(size: size, alignment: alignment, within: window))
                        #expect(store.firstGap(within: window, minimumSize: size) == model.firstGap(within: window, minimumSize: size))
                        #expect(store.allocate(size: size, alignment: alignment, within: 0...UInt64.max)
                                    == model.allocate(size: size, alignment: alignment, within: 0...UInt64.max))
                    }
                }
            }
            #expect(tallest >= 2, "the tree should have grown to three levels")
            // Drain in chunks: merges all the way up until the root is a single leaf, then empty.
            for start in stride(from: UInt64(0), through: 30_003, by: 211) {
                store.erase(start...(start + 210))
                model.erase(start...(start + 210))
                guard Self.expectSame(store, model, step: operations.count, (0, start, 210, 0)) else { return }
            }
            #expect(store.isEmpty && store.height == 0)
        }
    }

    static func apply(_ operation: Operation, to store: inout RangeStore<Tag>, and model: inout ReferenceRangeStore<Tag>) {
        let range = TestPoints.range(operation.a, operation.b)
        let tag = Tag(base: operation.c)
        switch operation.kind % 8 {
        case 0, 1:
            let actual = Result { () throws(RangeStoreError) in try store.insert(range, tag) }
            let expected = Result { () throws(RangeStoreError) in try model.insert(range, tag) }
            #expect(Self.same(actual, expected), "insert \(range): \(actual) vs \(expected)")
        case 2, 3:
            store.store(range, tag)
            model.store(range, tag)
        case 4, 5:
            store.erase(range)
            model.erase(range)
        case 6:
            let point = TestPoints.point(operation.c)
            #expect(store.lookup(point).map(Self.pair) == model.lookup(point).map(Self.pair), "lookup \(point)")
            var visited: [[UInt64]] = []
            store.forEach(intersecting: range) { visited.append(Self.pair(($0, $1))) }
            #expect(visited == model.intersecting(range).map(Self.pair), "forEach intersecting \(range)")
            let window = range
            let minimum = TestPoints.size(operation.a ^ operation.c)
            #expect(store.firstGap(within: window, minimumSize: minimum) == model.firstGap(within: window, minimumSize: minimum),
                    "firstGap in \(window) of \(minimum)")
        default:
            let size = TestPoints.size(operation.c)
            let alignment = TestPoints.alignment(operation.c >> 32)
            #expect(store.allocate(size: size, alignment: alignment, within: range)
                        == model.allocate(size: size, alignment: alignment, within: range),
                    "allocate \(size) aligned \(alignment) in \(range)")
        }
    }

    static func same(_ a: Result<Void, RangeStoreError>, _ b: Result<Void, RangeStoreError>) -> Bool {
        switch (a, b) {
        case (.success, .success): true
        case (.failure(let x), .failure(let y)): x == y
        default: false
        }
    }

    static func pair(_ entry: (range: ClosedRange<UInt64>, value: Tag)) -> [UInt64] {
        [entry.range.lowerBound, entry.range.upperBound, entry.value.base]
    }

    /// Compares everything; returns false (after recording issues) on the first difference.
    static func expectSame(_ store: RangeStore<Tag>, _ model: ReferenceRangeStore<Tag>, step: Int, _ operation: Operation) -> Bool {
        var actual: [[UInt64]] = []
        store.forEach(intersecting: 0...UInt64.max) { actual.append(pair(($0, $1))) }
        let expected = model.entries.map(pair)
        let violations = store.invariantViolations()
        #expect(actual == expected, "after step \(step): \(operation)")
        #expect(store.count == model.entries.count)
        #expect(violations.isEmpty, "after step \(step): \(violations)")
        return actual == expected && violations.isEmpty
    }
}
