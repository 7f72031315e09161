import PropertyBased
import Testing

@testable import IOMMUModel

/// Random pin / release / invalidate sequences against a model that keeps the live pins as a
/// plain list, compared after every step.
@Suite("PinTracker against a list of pins")
struct PinTrackerPropertyTests {
    typealias Operation = (kind: UInt8, a: UInt64, b: UInt64)

    /// Holds a token in a collection (tokens are non-copyable, so they cannot sit in an array).
    final class Held {
        var token: PinToken?
        let range: ClosedRange<UInt64>
        init(_ token: consuming PinToken) {
            range = token.range
            self.token = Optional(token)
        }
    }

    /// The model: live pins and pending invalidations as lists.
    struct Model {
        var limit: UInt64
        var pins: [ClosedRange<UInt64>] = []
        var pending: [(id: UInt64, range: ClosedRange<UInt64>)] = []
        var lastID: UInt64 = 0

        /// Bytes covered by at least one pin, in 128 bits (the whole space is 2^64).
        static func union(_ ranges: [ClosedRange<UInt64>]) -> UInt128 {
            var total: UInt128 = 0
            var reach: UInt128 = 0  // everything below is counted
            for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                let start = max(UInt128(range.lowerBound), reach)
                let end = UInt128(range.upperBound) + 1
                if end > start { total += end - start }
                reach = max(reach, end)
            }
            return total
        }

        var pinnedBytes: UInt128 { Self.union(pins) }

        mutating func pin(_ range: ClosedRange<UInt64>) -> PinError? {
            if let blocking = pending.first(where: { $0.range.overlaps(range) }) {
                return .invalidationPending(InvalidationID(rawValue: blocking.id))
            }
            if Self.union(pins + [range]) > UInt128(limit) {
                return .limitExceeded(limit: limit, pinned: UInt64(pinnedBytes), requested: range)
            }
            pins.append(range)
            return nil
        }

        /// Removes one pin of `range`; returns the invalidations that complete, oldest first.
        mutating func release(_ range: ClosedRange<UInt64>) -> [InvalidationID] {
            if let index = pins.firstIndex(of: range) { pins.remove(at: index) }
            let done = pending.filter { invalidation in !pins.contains { $0.overlaps(invalidation.range) } }
            pending.removeAll { invalidation in !pins.contains { $0.overlaps(invalidation.range) } }
            return done.map { InvalidationID(rawValue: $0.id) }
        }

        mutating func invalidate(_ range: ClosedRange<UInt64>) -> InvalidationOutcome {
            guard pins.contains(where: { $0.overlaps(range) }) else { return .completed }
            lastID += 1
            pending.append((lastID, range))
            return .deferred(InvalidationID(rawValue: lastID))
        }
    }

    static let operations = zip(Gen.uint8(), Gen.uint64(), Gen.uint64()).map { Operation($0, $1, $2) }.array(of: 1...2000)

    @Test func randomSequencesMatchTheModel() async {
        var deferred = 0
        var refusedForLimit = 0
        await propertyCheck(count: 20, input: zip(Gen.uint64(in: 0...3), Self.operations)) { limitChoice, operations in
            let limit: UInt64 = [UInt64.max, 100, 1 << 63, 40][Int(limitChoice)]
            var tracker = PinTracker(limit: limit)
            var model = Model(limit: limit)
            var held: [Held] = []
            for (step, operation) in operations.enumerated() {
                let range = TestPoints.range(operation.a, operation.b)
                switch operation.kind % 8 {
                case 0, 1, 2:
                    let expected = model.pin(range)
                    do throws(PinError) {
                        held.append(Held(try tracker.pin(range)))
                        guard expected == nil else {
                            Issue.record("step \(step): pinned \(range) but the model refuses: \(String(describing: expected))")
                            return
                        }
                    } catch {
                        guard error == expected else {
                            Issue.record("step \(step): pin \(range) refused with \(error), the model says \(String(describing: expected))")
                            return
                        }
                        if case .limitExceeded = error { refusedForLimit += 1 }
                    }
                case 3, 4, 5:
                    guard !held.isEmpty else { continue }
                    let box = held.remove(at: Int(operation.a % UInt64(held.count)))
                    let expected = model.release(box.range)
                    guard let token = box.token.take() else { continue }
                    do { try tracker.release(token) } catch { Issue.record("release: \(error)") }
                    let completed = tracker.completedInvalidations()
                    guard completed == expected else {
                        Issue.record("step \(step): release \(box.range) completed \(completed), the model \(expected)")
                        return
                    }
                default:
                    let outcome = tracker.invalidate(range)
                    let expected = model.invalidate(range)
                    guard outcome == expected else {
                        Issue.record("step \(step): invalidate \(range) gave \(outcome), the model \(expected)")
                        return
                    }
                    if case .deferred = outcome { deferred += 1 }
                }
                let point = TestPoints.point(operation.b ^ operation.a)
                guard UInt128(tracker.pinnedBytes) == model.pinnedBytes, tracker.pinCount == model.pins.count,
                    tracker.pendingInvalidations.map(\.rawValue) == model.pending.map(\.id),
                    tracker.pinCount(at: point) == model.pins.filter({ $0.contains(point) }).count,
                    Self.runsAreCanonical(tracker.pinRuns)
                else {
                    Issue.record("step \(step): state differs from the model after \(operation)")
                    return
                }
            }
            for box in held { if let token = box.token.take() { try? tracker.release(token) } }
            #expect(tracker.pinnedBytes == 0 && tracker.pendingInvalidations.isEmpty)
        }
        #expect(deferred >= 50 && refusedForLimit >= 50, "deferred \(deferred), refused \(refusedForLimit)")
    }

    /// Every run has a count, and touching runs differ.
    static func runsAreCanonical(_ runs: RangeStore<CoverageCount>) -> Bool {
        var previous: (ClosedRange<UInt64>, Int)?
        var sound = true
        runs.forEach(intersecting: 0...UInt64.max) { range, value in
            if value.count < 1 { sound = false }
            if let (last, count) = previous, last.upperBound &+ 1 == range.lowerBound, last.upperBound != .max, count == value.count {
                sound = false
            }
            previous = (range, value.count)
        }
        return sound
    }
}
