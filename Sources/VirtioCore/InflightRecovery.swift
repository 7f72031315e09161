/// What a restarted back end does with a repaired inflight region: serve `resubmit` first, in
/// this order (the order the previous instance fetched them), then continue with the
/// available ring at `nextAvailableIndex`, numbering fetches from `nextCounter`.
public struct InflightRecovery: Equatable, Sendable {
    /// Heads recorded in flight, sorted by their fetch counter.
    public var resubmit: [UInt16]
    /// used->idx plus the requests still in flight: the first available entry not yet fetched.
    public var nextAvailableIndex: UInt16
    /// One past the largest counter seen.
    public var nextCounter: UInt64

    public init(resubmit: [UInt16], nextAvailableIndex: UInt16, nextCounter: UInt64) {
        self.resubmit = resubmit
        self.nextAvailableIndex = nextAvailableIndex
        self.nextCounter = nextCounter
    }
}
