/// A count per byte of the 64-bit space, kept as maximal runs of equal non-zero counts: the
/// interval tree of pins (/dev/ioasid), flattened into disjoint runs.
///
/// Invariant (canonical form): every stored run has a count >= 1, and two runs that touch have
/// different counts, so the store is as small as the counts allow however many ranges came and
/// went.
struct RangeCounter: Sendable {
    private(set) var runs = RangeStore<CoverageCount>()

    /// The count at `point` (0 when uncovered).
    func count(at point: UInt64) -> Int {
        runs.lookup(point)?.value.count ?? 0
    }

    /// Whether any byte of `range` has a count.
    func intersects(_ range: ClosedRange<UInt64>) -> Bool {
        runs.firstEntry(intersecting: range) != nil
    }

    /// The bytes of `range` with count 0; nil when that is all 2^64 bytes.
    func uncoveredBytes(in range: ClosedRange<UInt64>) -> UInt64? {
        var total: UInt64 = 0
        for hole in holes(in: range) {
            // The holes of one range add up to at most 2^64, reached only by the whole space.
            guard let size = Self.byteCount(hole) else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(size)
            guard !overflow else { return nil }
            total = sum
        }
        return total
    }

    /// The maximal runs of `range` with count 0, in order.
    func holes(in range: ClosedRange<UInt64>) -> [ClosedRange<UInt64>] {
        var holes: [ClosedRange<UInt64>] = []
        var cursor: UInt64? = range.lowerBound  // the first byte not yet looked at; nil past the top
        runs.forEach(intersecting: range) { run, _ in
            if let start = cursor, start < run.lowerBound { holes.append(start...(run.lowerBound - 1)) }
            cursor = run.upperBound == UInt64.max ? nil : run.upperBound + 1
        }
        if let start = cursor, start <= range.upperBound { holes.append(start...range.upperBound) }
        return holes
    }

    /// Adds one to every byte of `range`.
    mutating func increment(_ range: ClosedRange<UInt64>) {
        var changes: [(ClosedRange<UInt64>, Int)] = holes(in: range).map { ($0, 1) }
        runs.forEach(intersecting: range) { run, value in changes.append((run.clamped(to: range), value.count + 1)) }
        for (piece, count) in changes { runs.store(piece, CoverageCount(count: count)) }
        coalesce(around: range)
    }

    /// Takes one from every byte of `range` (each must have a count); returns how many bytes
    /// dropped to 0 (saturating at `UInt64.max`).
    mutating func decrement(_ range: ClosedRange<UInt64>) -> UInt64 {
        var changes: [(ClosedRange<UInt64>, Int)] = []
        runs.forEach(intersecting: range) { run, value in changes.append((run.clamped(to: range), value.count - 1)) }
        var freed: UInt64 = 0
        for (piece, count) in changes {
            if count > 0 {
                runs.store(piece, CoverageCount(count: count))
            } else {
                runs.erase(piece)
                let (sum, overflow) = freed.addingReportingOverflow(Self.byteCount(piece) ?? .max)
                freed = overflow ? .max : sum
            }
        }
        coalesce(around: range)
        return freed
    }

    /// Restores the canonical form after a change inside `range`: joins touching runs with
    /// equal counts from the run before `range` to the run after it.
    private mutating func coalesce(around range: ClosedRange<UInt64>) {
        let widened = (range.lowerBound == 0 ? 0 : range.lowerBound - 1)...(range.upperBound == UInt64.max ? .max : range.upperBound + 1)
        var groups: [(ClosedRange<UInt64>, Int, Int)] = []  // range, count, runs joined
        runs.forEach(intersecting: widened) { run, value in
            if let (last, count, joined) = groups.last, count == value.count, last.upperBound &+ 1 == run.lowerBound, last.upperBound != .max {
                groups[groups.count - 1] = (last.lowerBound...run.upperBound, count, joined + 1)
            } else {
                groups.append((run, value.count, 1))
            }
        }
        for (group, count, joined) in groups where joined > 1 { runs.store(group, CoverageCount(count: count)) }
    }

    /// The number of bytes in `range`; nil for the whole space (2^64 does not fit).
    static func byteCount(_ range: ClosedRange<UInt64>) -> UInt64? {
        let span = range.upperBound - range.lowerBound
        return span == UInt64.max ? nil : span + 1
    }
}
