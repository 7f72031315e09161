/// The IOVA ranges that requests in flight are using, so that unmapping or invalidating them
/// waits until those requests are done: /dev/ioasid's interval tree of pins, with its
/// per-range reference counts.
///
/// A request pins each IOVA range it translated before touching the memory behind it and
/// releases the pin when it completes. Pins are counted per range, not per page: overlapping
/// pins add up byte by byte (a ``RangeCounter``), so a 1 GiB pin costs one entry. An
/// invalidation of a range no pin covers completes at once; otherwise it is deferred, new pins
/// on its range are refused, and it completes when the last pin covering it is released
/// (``completedInvalidations()`` reports it: the back end then acknowledges the front end's
/// INVALIDATE or unmaps the memory).
///
/// Invariants: ``pinnedBytes`` is the number of bytes covered by at least one pin and never
/// exceeds ``limit``; a deferred invalidation's range always has a pin on it; no pin was taken
/// on a range while a deferred invalidation overlapped it.
///
/// The tracker is non-copyable: a copy would let one pin be released twice, once per copy.
public struct PinTracker: ~Copyable, Sendable {
    /// The most bytes that may be pinned at once.
    public let limit: UInt64
    /// The bytes covered by at least one pin.
    public private(set) var pinnedBytes: UInt64 = 0
    /// The pins held (tokens given out and not yet released).
    public private(set) var pinCount = 0

    private let identity = UniqueNumber.next()
    /// Pins per byte.
    private var pins = RangeCounter()
    /// The runs of equal pin counts (for tests).
    var pinRuns: RangeStore<CoverageCount> { pins.runs }
    /// Deferred invalidations per byte, so a pin can be refused in O(log n).
    private var pendingCoverage = RangeCounter()
    /// Deferred invalidations, oldest first.
    private var pending: [(id: InvalidationID, range: ClosedRange<UInt64>)] = []
    private var completed: [InvalidationID] = []
    private var lastInvalidation: UInt64 = 0

    /// A tracker that lets at most `limit` bytes be pinned at once.
    public init(limit: UInt64 = .max) {
        self.limit = limit
    }

    /// Pins `range` for a request.
    ///
    /// - Throws: ``PinError/invalidationPending(_:)`` when a deferred invalidation overlaps the
    ///   range; ``PinError/limitExceeded(limit:pinned:requested:)`` when the bytes not pinned
    ///   yet would take ``pinnedBytes`` past ``limit``. Nothing is pinned then.
    public mutating func pin(_ range: ClosedRange<UInt64>) throws(PinError) -> PinToken {
        if pendingCoverage.intersects(range), let blocking = pending.first(where: { $0.range.overlaps(range) }) {
            throw .invalidationPending(blocking.id)
        }
        guard let added = pins.uncoveredBytes(in: range), added <= limit - pinnedBytes else {
            throw .limitExceeded(limit: limit, pinned: pinnedBytes, requested: range)
        }
        pins.increment(range)
        pinnedBytes += added
        pinCount += 1
        return PinToken(range: range, tracker: identity)
    }

    /// Releases a pin. Deferred invalidations whose ranges it was the last pin on complete.
    ///
    /// - Throws: ``PinError/foreignToken`` for a token of another tracker.
    public mutating func release(_ token: consuming PinToken) throws(PinError) {
        guard token.tracker == identity else { throw .foreignToken }
        let range = token.range
        pinnedBytes -= pins.decrement(range)
        pinCount -= 1
        var index = 0
        while index < pending.count {
            let invalidation = pending[index]
            if invalidation.range.overlaps(range), !pins.intersects(invalidation.range) {
                pending.remove(at: index)
                _ = pendingCoverage.decrement(invalidation.range)
                completed.append(invalidation.id)
            } else {
                index += 1
            }
        }
    }

    /// Asks to invalidate (or unmap) `range`: completed at once when no pin covers it,
    /// otherwise deferred until the pins on it are released.
    public mutating func invalidate(_ range: ClosedRange<UInt64>) -> InvalidationOutcome {
        guard pins.intersects(range) else { return .completed }
        lastInvalidation += 1
        let id = InvalidationID(rawValue: lastInvalidation)
        pending.append((id, range))
        pendingCoverage.increment(range)
        return .deferred(id)
    }

    /// The deferred invalidations that completed since the last call, in the order they
    /// completed (by id within one release).
    public mutating func completedInvalidations() -> [InvalidationID] {
        defer { completed.removeAll() }
        return completed
    }

    /// The deferred invalidations still waiting for pins, oldest first.
    public var pendingInvalidations: [InvalidationID] { pending.map(\.id) }

    /// How many pins cover `iova`.
    public func pinCount(at iova: UInt64) -> Int {
        pins.count(at: iova)
    }

    /// Whether any byte of `range` is pinned.
    public func isPinned(_ range: ClosedRange<UInt64>) -> Bool {
        pins.intersects(range)
    }
}
