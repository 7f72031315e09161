import Testing

@testable import IOMMUModel

@Suite("PinTracker")
struct PinTrackerTests {
    @Test func overlappingPinsAreCountedPerRangeAndAddUp() throws {
        var tracker = PinTracker()
        let first = try tracker.pin(0...99)
        let second = try tracker.pin(50...149)
        #expect(tracker.pinnedBytes == 150)
        #expect(tracker.pinCount == 2)
        #expect(tracker.pinCount(at: 49) == 1 && tracker.pinCount(at: 50) == 2 && tracker.pinCount(at: 149) == 1)
        try tracker.release(first)
        #expect(tracker.pinnedBytes == 100 && tracker.pinCount(at: 49) == 0 && tracker.pinCount(at: 50) == 1)
        try tracker.release(second)
        #expect(tracker.pinnedBytes == 0 && tracker.pinCount == 0 && !tracker.isPinned(0...UInt64.max))
    }

    @Test func aLargePinIsOneRunNotOnePerPage() throws {
        var tracker = PinTracker()
        let big = try tracker.pin(0...(1 << 30 - 1))
        var small: [UInt64] = []
        for page in UInt64(0)..<64 {
            let token = try tracker.pin((page << 12)...((page << 12) + 0xFFF))
            try tracker.release(token)
            small.append(page)
        }
        // Equal neighbouring counts are joined again after every release.
        #expect(tracker.coverageRunCount == 1)
        try tracker.release(big)
        #expect(tracker.coverageRunCount == 0)
    }

    @Test func invalidatingAnUnpinnedRangeCompletesAtOnce() throws {
        var tracker = PinTracker()
        let token = try tracker.pin(0x1000...0x1FFF)
        #expect(tracker.invalidate(0x2000...0x2FFF) == .completed)
        #expect(tracker.pendingInvalidations.isEmpty)
        try tracker.release(token)
    }

    @Test func pinsDeferInvalidationUntilTheLastOneIsReleased() throws {
        var tracker = PinTracker()
        let first = try tracker.pin(0x1000...0x1FFF)
        let second = try tracker.pin(0x1800...0x27FF)
        let outcome = tracker.invalidate(0x0...0x1FFF)
        guard case .deferred(let id) = outcome else {
            Issue.record("expected a deferred invalidation, got \(outcome)")
            return
        }
        try tracker.release(first)
        #expect(tracker.completedInvalidations().isEmpty, "the second pin still covers 0x1800...0x1FFF")
        #expect(tracker.pendingInvalidations == [id])
        try tracker.release(second)
        #expect(tracker.completedInvalidations() == [id])
        #expect(tracker.completedInvalidations().isEmpty, "reported exactly once")
        #expect(tracker.pendingInvalidations.isEmpty)
    }

    @Test func newPinsOnARangeBeingInvalidatedAreRefused() throws {
        var tracker = PinTracker()
        let token = try tracker.pin(0x1000...0x1FFF)
        guard case .deferred(let id) = tracker.invalidate(0x1000...0x1FFF) else {
            Issue.record("expected a deferred invalidation")
            return
        }
        #expect(throws: PinError.invalidationPending(id)) { _ = try tracker.pin(0x1FFF...0x2FFF) }
        let elsewhere = try tracker.pin(0x2000...0x2FFF)
        try tracker.release(token)
        #expect(tracker.completedInvalidations() == [id])
        let again = try tracker.pin(0x1000...0x1FFF)
        try tracker.release(again)
        try tracker.release(elsewhere)
    }

    @Test func severalDeferredInvalidationsCompleteInOrder() throws {
        var tracker = PinTracker()
        let token = try tracker.pin(0...0xFFFF)
        let a = tracker.invalidate(0x8000...0x8FFF)
        let b = tracker.invalidate(0x0...0x0)
        let c = tracker.invalidate(0x0...0xFFFF)
        #expect(a == .deferred(InvalidationID(rawValue: 1)) && b == .deferred(InvalidationID(rawValue: 2)) && c == .deferred(InvalidationID(rawValue: 3)))
        try tracker.release(token)
        #expect(tracker.completedInvalidations().map(\.rawValue) == [1, 2, 3])
    }

    @Test func theLimitCountsOnlyBytesNotPinnedYet() throws {
        var tracker = PinTracker(limit: 100)
        let first = try tracker.pin(0...99)
        let overlapping = try tracker.pin(50...99)  // adds nothing
        #expect(throws: PinError.limitExceeded(limit: 100, pinned: 100, requested: 99...100)) { _ = try tracker.pin(99...100) }
        #expect(tracker.pinnedBytes == 100 && tracker.pinCount == 2)
        try tracker.release(first)
        let next = try tracker.pin(100...149)
        #expect(tracker.pinnedBytes == 100)
        try tracker.release(overlapping)
        try tracker.release(next)
    }

    @Test func pinsAtTheEdgesOfTheSpace() throws {
        var tracker = PinTracker()
        let top = try tracker.pin(UInt64.max...UInt64.max)
        let bottom = try tracker.pin(0...0)
        #expect(tracker.pinnedBytes == 2 && tracker.pinCount(at: .max) == 1)
        #expect(throws: PinError.limitExceeded(limit: .max, pinned: 2, requested: 0...UInt64.max)) { _ = try tracker.pin(0...UInt64.max) }
        let almostAll = try tracker.pin(0...(UInt64.max - 2))
        #expect(tracker.pinnedBytes == UInt64.max)
        try tracker.release(top)
        try tracker.release(bottom)
        try tracker.release(almostAll)
        #expect(tracker.pinnedBytes == 0)
    }

    @Test func aTokenFromAnotherTrackerIsRefused() throws {
        var mine = PinTracker()
        var theirs = PinTracker()
        let token = try theirs.pin(0...9)
        do {
            try mine.release(token)
            Issue.record("released another tracker's token")
        } catch {
            #expect(error == .foreignToken)
        }
        #expect(theirs.pinCount == 1)
        #expect(mine.pinCount == 0)
    }
}

extension PinTracker {
    /// The number of runs in the per-byte pin counts (tests only).
    var coverageRunCount: Int { pinRuns.count }
}
