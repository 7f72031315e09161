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
        var covered: UInt64 = 0
        var coversAll = false  // the covered bytes add up to 2^64, which does not fit
        runs.forEach(intersecting: range) { run, _ in
            guard let bytes = Self.byteCount(run.clamped(to: range)) else {
                coversAll = true
                return
            }
            // Disjoint pieces of one range overflow only by reaching exactly 2^64.
            let (sum, overflow) = covered.addingReportingOverflow(bytes)
            if overflow { coversAll = true }
            covered = sum
        }
        if coversAll { return 0 }
        guard let size = Self.byteCount(range) else { return covered == 0 ? nil : 0 &- covered }
        return size - covered
    }

    // Changes go piece by piece, each found with one lookup and then stored, with no list of
    // pieces built first: a queue worker behind a vIOMMU pins and releases per request.

    /// Adds one to every byte of `range`.
    mutating func increment(_ range: ClosedRange<UInt64>) {
        var cursor = range.lowerBound
        while true {
            guard let (run, value) = runs.firstEntry(intersecting: cursor...range.upperBound) else {
                runs.store(cursor...range.upperBound, CoverageCount(count: 1))
                break
            }
            if run.lowerBound > cursor { runs.store(cursor...(run.lowerBound - 1), CoverageCount(count: 1)) }
            let piece = max(run.lowerBound, cursor)...min(run.upperBound, range.upperBound)
            runs.store(piece, CoverageCount(count: value.count + 1))
            guard piece.upperBound < range.upperBound else { break }
            cursor = piece.upperBound + 1
        }
        coalesce(around: range)
    }

    /// Takes one from every byte of `range` (each must have a count); returns how many bytes
    /// dropped to 0 (saturating at `UInt64.max`).
    mutating func decrement(_ range: ClosedRange<UInt64>) -> UInt64 {
        var freed: UInt64 = 0
        var cursor = range.lowerBound
        while let (run, value) = runs.firstEntry(intersecting: cursor...range.upperBound) {
            let piece = max(run.lowerBound, cursor)...min(run.upperBound, range.upperBound)
            if value.count > 1 {
                runs.store(piece, CoverageCount(count: value.count - 1))
            } else {
                runs.erase(piece)
                let (sum, overflow) = freed.addingReportingOverflow(Self.byteCount(piece) ?? .max)
                freed = overflow ? .max : sum
            }
            guard piece.upperBound < range.upperBound else { break }
            cursor = piece.upperBound + 1
        }
        coalesce(around: range)
        return freed
    }

    /// Restores the canonical form after a change inside `range`: joins touching runs with
    /// equal counts from the run before `range` to the run after it.
    private mutating func coalesce(around range: ClosedRange<UInt64>) {
        let widened = (range.lowerBound == 0 ? 0 : range.lowerBound - 1)...(range.upperBound == UInt64.max ? .max : range.upperBound + 1)
        guard var (current, value) = runs.firstEntry(intersecting: widened) else { return }
        while current.upperBound < widened.upperBound,
              let (next, nextValue) = runs.firstEntry(intersecting: (current.upperBound + 1)...widened.upperBound) {
            if next.lowerBound == current.upperBound + 1, nextValue.count == value.count {
                current = current.lowerBound...next.upperBound
                runs.store(current, value)
            } else {
                current = next
                value = nextValue
            }
        }
    }

    /// The number of bytes in `range`; nil for the whole space (2^64 does not fit).
    static func byteCount(_ range: ClosedRange<UInt64>) -> UInt64? {
        let span = range.upperBound - range.lowerBound
        return span == UInt64.max ? nil : span + 1
    }
}
