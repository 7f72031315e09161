import IOMMUModel

/// The plain model a ``RangeStore`` is compared with: a sorted array, every operation a linear
/// scan written the obvious way.
struct ReferenceRangeStore<Value: RangeValue> {
    var entries: [(range: ClosedRange<UInt64>, value: Value)] = []

    func lookup(_ point: UInt64) -> (range: ClosedRange<UInt64>, value: Value)? {
        entries.first { $0.range.contains(point) }
    }

    func intersecting(_ range: ClosedRange<UInt64>) -> [(range: ClosedRange<UInt64>, value: Value)] {
        entries.filter { $0.range.overlaps(range) }
    }

    mutating func insert(_ range: ClosedRange<UInt64>, _ value: Value) throws(RangeStoreError) {
        if let existing = entries.first(where: { $0.range.overlaps(range) }) {
            throw .overlap(existing: existing.range)
        }
        entries.append((range, value))
        entries.sort { $0.range.lowerBound < $1.range.lowerBound }
    }

    mutating func store(_ range: ClosedRange<UInt64>, _ value: Value) {
        erase(range)
        entries.append((range, value))
        entries.sort { $0.range.lowerBound < $1.range.lowerBound }
    }

    mutating func erase(_ range: ClosedRange<UInt64>) {
        var kept: [(range: ClosedRange<UInt64>, value: Value)] = []
        for entry in entries {
            guard entry.range.overlaps(range) else {
                kept.append(entry)
                continue
            }
            if entry.range.lowerBound < range.lowerBound {
                kept.append((entry.range.lowerBound...(range.lowerBound - 1), entry.value))
            }
            if entry.range.upperBound > range.upperBound {
                let tail = range.upperBound + 1
                kept.append((tail...entry.range.upperBound, entry.value.sliced(from: tail - entry.range.lowerBound)))
            }
        }
        entries = kept
    }

    /// Every maximal free run, in order.
    var gaps: [ClosedRange<UInt64>] {
        var result: [ClosedRange<UInt64>] = []
        var next: UInt64? = 0  // the first byte not yet accounted for; nil past the top
        for entry in entries {
            if let start = next, start < entry.range.lowerBound {
                result.append(start...(entry.range.lowerBound - 1))
            }
            next = entry.range.upperBound == .max ? nil : entry.range.upperBound + 1
        }
        if let start = next { result.append(start...UInt64.max) }
        return result
    }

    func firstGap(within window: ClosedRange<UInt64>, minimumSize: UInt64) -> ClosedRange<UInt64>? {
        for gap in gaps where gap.overlaps(window) {
            let clipped = gap.clamped(to: window)
            if clipped.upperBound - clipped.lowerBound >= max(minimumSize, 1) - 1 { return clipped }
        }
        return nil
    }

    func allocate(size: UInt64, alignment: UInt64, within window: ClosedRange<UInt64>) -> ClosedRange<UInt64>? {
        guard size > 0 else { return nil }
        let alignment = max(alignment, 1)
        for gap in gaps where gap.overlaps(window) {
            let clipped = gap.clamped(to: window)
            // Round up to the alignment in 128-bit arithmetic, so nothing here can overflow.
            let start = (UInt128(clipped.lowerBound) + UInt128(alignment) - 1) / UInt128(alignment) * UInt128(alignment)
            let end = start + UInt128(size) - 1
            if end <= UInt128(clipped.upperBound) { return UInt64(start)...UInt64(end) }
        }
        return nil
    }
}
