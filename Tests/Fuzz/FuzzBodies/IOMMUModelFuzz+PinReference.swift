import IOMMUModel

extension IOMMUModelFuzz {
    /// The plain model of a `PinTracker`: the pins held as a list of ranges (a pin released
    /// to the wrong tracker stays in it, as it stays held), deferred invalidations as a list,
    /// byte counts computed in 128 bits.
    struct PinReference {
        let limit: UInt64
        private(set) var pins: [ClosedRange<UInt64>] = []
        private(set) var pending: [(id: UInt64, range: ClosedRange<UInt64>)] = []
        private var lastID: UInt64 = 0

        init(limit: UInt64) {
            self.limit = limit
        }

        /// The bytes covered by at least one of `ranges` (2^64 for the whole space).
        static func union(_ ranges: [ClosedRange<UInt64>]) -> UInt128 {
            var total: UInt128 = 0
            var reach: UInt128 = 0  // every byte below is counted
            for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                let start = max(UInt128(range.lowerBound), reach)
                let end = UInt128(range.upperBound) + 1
                if end > start { total += end - start }
                reach = max(reach, end)
            }
            return total
        }

        var pinnedBytes: UInt128 { Self.union(pins) }

        func count(at point: UInt64) -> Int { pins.count { $0.contains(point) } }

        func isPinned(_ range: ClosedRange<UInt64>) -> Bool { pins.contains { $0.overlaps(range) } }

        /// The refusal `pin` must give, or nil after recording the pin.
        mutating func pin(_ range: ClosedRange<UInt64>) -> PinError? {
            if let blocking = pending.first(where: { $0.range.overlaps(range) }) {
                return .invalidationPending(InvalidationID(rawValue: blocking.id))
            }
            let pinned = pinnedBytes
            if Self.union(pins + [range]) > UInt128(limit) {
                return .limitExceeded(limit: limit, pinned: UInt64(pinned), requested: range)
            }
            pins.append(range)
            return nil
        }

        /// Releases one pin of `range`; returns the invalidations that complete, oldest first.
        mutating func release(_ range: ClosedRange<UInt64>) -> [InvalidationID] {
            if let index = pins.firstIndex(of: range) { pins.remove(at: index) }
            let done = pending.filter { invalidation in !isPinned(invalidation.range) }
            pending = pending.filter { invalidation in isPinned(invalidation.range) }
            return done.map { InvalidationID(rawValue: $0.id) }
        }

        mutating func invalidate(_ range: ClosedRange<UInt64>) -> InvalidationOutcome {
            guard isPinned(range) else { return .completed }
            lastID += 1
            pending.append((lastID, range))
            return .deferred(InvalidationID(rawValue: lastID))
        }
    }
}
